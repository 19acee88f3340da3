// Validates Kubernetes documents against Istio's own CRD schemas, as published in the npm
// package @kubernetes-models/istio (models generated from Istio's CRDs, with their OpenAPI
// validation compiled in): types, enums (phase, failStrategy, imagePullPolicy, valueFrom, ...),
// patterns (sha256), required fields.
//
// Input: a JSON array of documents on stdin (the Rust tests turn the YAML into JSON).
// Output: one line per document, `ok KIND/NAME` or `error KIND/NAME: what`; exit status 1 when
// any document is refused, 2 when the input cannot be read.
//
// One more check the package's validator does not make: unknown fields. The API server refuses
// them (kubectl's default strict field validation), but the compiled validator ignores them. So
// every field of a document is probed: it is replaced by a value of the wrong type (0.5, or a
// string where the document has a number) and the document validated again. A field the schema
// knows then fails; one it does not know passes, and is reported as unknown. The subtrees the
// CRDs leave free-form (x-kubernetes-preserve-unknown-fields) are not probed: a WasmPlugin's
// `spec.pluginConfig` (the filter's own config, which the Rust tests check with the filter's own
// validation) and an EnvoyFilter patch's `value`.

const FREE_FORM = [
  /^\/spec\/pluginConfig\//,
  /^\/spec\/configPatches\/\d+\/patch\/value\//,
];

async function modelFor(doc) {
  const [group, version] = String(doc.apiVersion ?? "").split("/");
  if (!group || !version || !/^[A-Za-z]+$/.test(String(doc.kind ?? ""))) {
    throw new Error(`not a Kubernetes document (apiVersion ${doc.apiVersion}, kind ${doc.kind})`);
  }
  let module;
  try {
    module = await import(`@kubernetes-models/istio/${group}/${version}/${doc.kind}`);
  } catch {
    throw new Error(`no Istio schema for ${doc.apiVersion} ${doc.kind}`);
  }
  const Model = module[doc.kind];
  if (typeof Model !== "function") {
    throw new Error(`no Istio schema for ${doc.apiVersion} ${doc.kind}`);
  }
  return Model;
}

function check(Model, doc) {
  try {
    new Model(doc).validate();
    return null;
  } catch (e) {
    return String(e.message ?? e);
  }
}

// Every field path of a document (JSON-pointer style), parents before children.
function* fields(value, path = "") {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      yield [`${path}/${i}`, [i]];
      for (const [p, keys] of fields(value[i], `${path}/${i}`)) yield [p, [i, ...keys]];
    }
  } else if (value !== null && typeof value === "object") {
    for (const k of Object.keys(value)) {
      yield [`${path}/${k}`, [k]];
      for (const [p, keys] of fields(value[k], `${path}/${k}`)) yield [p, [k, ...keys]];
    }
  }
}

function probe(doc, keys) {
  const copy = structuredClone(doc);
  let parent = copy;
  for (const k of keys.slice(0, -1)) parent = parent[k];
  const last = keys[keys.length - 1];
  parent[last] = typeof parent[last] === "number" ? "not-a-number" : 0.5;
  return copy;
}

function unknownFields(Model, doc) {
  const unknown = [];
  for (const [path, keys] of fields(doc)) {
    if (path === "/apiVersion" || path === "/kind") continue;
    if (FREE_FORM.some((re) => re.test(path))) continue;
    // A field under one already reported is not reported again.
    if (unknown.some((u) => path.startsWith(`${u}/`))) continue;
    if (check(Model, probe(doc, keys)) === null) unknown.push(path);
  }
  return unknown;
}

async function main() {
  let docs;
  try {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    docs = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    if (!Array.isArray(docs)) throw new Error("expected a JSON array of documents");
  } catch (e) {
    console.error(`validate.mjs: ${e.message}`);
    process.exit(2);
  }
  let failed = false;
  for (const doc of docs) {
    const name = `${doc?.kind}/${doc?.metadata?.name}`;
    let problems = [];
    try {
      const Model = await modelFor(doc);
      const error = check(Model, doc);
      if (error !== null) problems.push(error);
      else problems = unknownFields(Model, doc).map((p) => `unknown field ${p}`);
    } catch (e) {
      problems.push(e.message);
    }
    if (problems.length === 0) {
      console.log(`ok ${name}`);
    } else {
      failed = true;
      console.log(`error ${name}: ${problems.join("; ")}`);
    }
  }
  process.exit(failed ? 1 : 0);
}

await main();
