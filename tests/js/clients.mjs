// Runs one JavaScript client against the gateway with its default settings and prints one JSON
// object on stdout: the client's version and what it got back. tests/test_js_clients.py starts
// the real server, runs `node clients.mjs <scenario> <base url> <model>` and checks the output.
import { readFileSync } from "node:fs";

const [scenario, baseUrl, model] = process.argv.slice(2);
const TEXTS = ["a cat sits on the mat", "Zürich ☕ café", "stock markets fell sharply"];

function versionOf(name) {
  // Read from the folder: some packages do not export ./package.json.
  const path = new URL(`./node_modules/${name}/package.json`, import.meta.url);
  return JSON.parse(readFileSync(path, "utf8")).version;
}

const scenarios = {
  async ollama() {
    const { Ollama } = await import("ollama");
    const client = new Ollama({ host: baseUrl });
    const embed = await client.embed({ model, input: TEXTS });
    const single = await client.embed({ model, input: TEXTS[0], dimensions: 128, truncate: false });
    const list = await client.list();
    const show = await client.show({ model });
    const ps = await client.ps();
    const pulled = [];
    for await (const part of await client.pull({ model, stream: true })) pulled.push(part.status);
    let missing = null;
    try {
      await client.embed({ model: "no-such-model", input: "x" });
    } catch (error) {
      missing = { status: error.status_code, message: error.error };
    }
    return {
      version: versionOf("ollama"),
      embeddings: embed.embeddings,
      prompt_eval_count: embed.prompt_eval_count,
      single: single.embeddings[0],
      listed: list.models.map((m) => m.name),
      show: { capabilities: show.capabilities, model_info: show.model_info },
      ps: ps.models.map((m) => m.name),
      pulled,
      missing,
    };
  },
  async openai() {
    const { default: OpenAI } = await import("openai");
    const client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: "unused", maxRetries: 0 });
    const plain = await client.embeddings.create({ model, input: TEXTS }); // base64 on the wire
    const cut = await client.embeddings.create({ model, input: TEXTS, dimensions: 37 });
    return {
      version: versionOf("openai"),
      embeddings: plain.data.map((d) => Array.from(d.embedding)),
      cut: cut.data.map((d) => Array.from(d.embedding)),
      usage: plain.usage,
    };
  },
  async "langchain-ollama"() {
    const { OllamaEmbeddings } = await import("@langchain/ollama");
    const embeddings = new OllamaEmbeddings({ model, baseUrl }); // truncate: false by default
    const long = Array(400).fill("word").join(" "); // 402 tokens with [CLS] and [SEP]
    return {
      version: versionOf("@langchain/ollama"),
      documents: await embeddings.embedDocuments(TEXTS),
      query: await embeddings.embedQuery(TEXTS[2]),
      long: (await embeddings.embedDocuments([long]))[0].length,
    };
  },
  async "langchain-openai"() {
    const { OpenAIEmbeddings } = await import("@langchain/openai");
    const embeddings = new OpenAIEmbeddings({
      model,
      apiKey: "unused",
      configuration: { baseURL: `${baseUrl}/v1` },
      maxRetries: 0,
    });
    return {
      version: versionOf("@langchain/openai"),
      documents: await embeddings.embedDocuments(TEXTS),
      query: await embeddings.embedQuery(TEXTS[2]),
    };
  },
};

const run = scenarios[scenario];
if (!run) {
  console.error(`unknown scenario ${scenario}; one of ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
try {
  console.log(JSON.stringify(await run()));
} catch (error) {
  console.error(error?.stack ?? String(error));
  process.exit(1);
}
