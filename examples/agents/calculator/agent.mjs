// The calculator agent in Node.js, with plain fetch (no SDK): the same loop as agent.py.
// Outrider runs it in the sandbox with OPENAI_BASE_URL pointing at a captured session of
// the policy, OUTRIDER_PROMPT holding the task and OUTRIDER_MODEL the served model's name;
// its stdout is its final answer (docs/agents.md).

const TOOLS = [{
  type: "function",
  function: {
    name: "calculate",
    description: "Evaluate an arithmetic expression with + - * / and parentheses.",
    parameters: { type: "object", properties: { expression: { type: "string" } }, required: ["expression"] },
  },
}];
const SYSTEM = "Solve the problem. You may call the calculate tool for arithmetic. " +
  "When you know the answer, reply with: Answer: <number>";
const MAX_CALLS = Number(process.env.AGENT_MAX_CALLS ?? 4);
const MAX_TOKENS = Number(process.env.AGENT_MAX_TOKENS ?? 128);

// Arithmetic by a small recursive-descent parser: never eval model-written text.
function calculate(expression) {
  const tokens = expression.match(/\d+(?:\.\d+)?|[-+*/()]/g) ?? [];
  let at = 0;
  const peek = () => tokens[at];
  const primary = () => {
    const token = tokens[at++];
    if (token === "(") { const value = sum(); at++; return value; }
    if (token === "-") return -primary();
    const value = Number(token);
    if (Number.isNaN(value)) throw new Error(`unexpected ${token}`);
    return value;
  };
  const product = () => {
    let value = primary();
    while (peek() === "*" || peek() === "/") value = tokens[at++] === "*" ? value * primary() : value / primary();
    return value;
  };
  const sum = () => {
    let value = product();
    while (peek() === "+" || peek() === "-") value = tokens[at++] === "+" ? value + product() : value - product();
    return value;
  };
  try { return String(sum()); } catch (error) { return `error: ${error.message}`; }
}

async function chat(messages) {
  const response = await fetch(`${process.env.OPENAI_BASE_URL}/chat/completions`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${process.env.OPENAI_API_KEY}` },
    body: JSON.stringify({ model: process.env.OUTRIDER_MODEL ?? "", messages, tools: TOOLS,
                           max_tokens: MAX_TOKENS, temperature: 1.0 }),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(`${response.status}: ${body.error?.message}`);
  return body.choices[0].message;
}

const messages = [{ role: "system", content: SYSTEM }, { role: "user", content: process.env.OUTRIDER_PROMPT }];
let answer = "";
for (let call = 0; call < MAX_CALLS; call++) {
  const message = await chat(messages);
  messages.push(message);
  answer = message.content ?? "";
  if (!message.tool_calls?.length) break;
  for (const toolCall of message.tool_calls) {
    let expression = "";
    try { expression = String(JSON.parse(toolCall.function.arguments).expression ?? ""); } catch { /* bad JSON */ }
    messages.push({ role: "tool", tool_call_id: toolCall.id, content: calculate(expression) });
  }
}
console.log(answer);
