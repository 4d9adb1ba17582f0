// Forms: small helpers, and the generic command form built from an action's OCA JSON schema.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) if (child != null) node.append(child);
  return node;
}

export function field(label, input) { return el("label", {}, label, input); }

function resolve(schema, root) {
  let s = schema;
  for (let i = 0; s && s.$ref && i < 20; i++) s = root.definitions?.[s.$ref.split("/").pop()];
  return s || {};
}

// A JSON value with every required property filled with a placeholder of its type.
export function skeleton(schema, root, depth = 0) {
  const s = resolve(schema, root);
  if (depth > 8) return null;
  if (s.enum) return s.enum[0];
  switch (s.type) {
    case "object": {
      const out = {};
      for (const name of s.required || []) out[name] = skeleton(s.properties?.[name] || {}, root, depth + 1);
      return out;
    }
    case "array": return [skeleton(s.items || {}, root, depth + 1)];
    case "integer": case "number": return s.minimum ?? 0;
    case "boolean": return false;
    case "string": return s.format === "date-time" ? new Date().toISOString() : "";
    default: return null;
  }
}

// One input per top-level property: enums as choices, numbers, text, booleans; objects and
// arrays as JSON text prefilled with their required parts. read() returns the payload.
export function schemaForm(schema) {
  const inputs = [];
  const rows = [];
  for (const [name, prop] of Object.entries(schema.properties || {})) {
    if (name === "customData") continue;
    const s = resolve(prop, schema);
    const required = (schema.required || []).includes(name);
    let input, read;
    if (s.enum) {
      input = el("select", { name }, required ? null : el("option", { value: "", text: "(none)" }),
        s.enum.map((v) => el("option", { value: v, text: v })));
      read = () => input.value || undefined;
    } else if (s.type === "integer" || s.type === "number") {
      input = el("input", { name, type: "number", step: s.type === "integer" ? "1" : "any", value: required ? skeleton(s, schema) : "" });
      read = () => (input.value === "" ? undefined : Number(input.value));
    } else if (s.type === "boolean") {
      input = el("input", { name, type: "checkbox" });
      read = () => input.checked;
    } else if (s.type === "string") {
      input = el("input", { name, type: "text", value: required ? skeleton(s, schema) : "" });
      read = () => (input.value === "" ? undefined : input.value);
    } else {
      input = el("textarea", { name, rows: 4 });
      input.value = required ? JSON.stringify(skeleton(s, schema), null, 1) : "";
      read = () => (input.value.trim() === "" ? undefined : JSON.parse(input.value));
    }
    inputs.push([name, read]);
    rows.push(field(`${name}${required ? " *" : ""}${s.description ? "" : ""}`, input));
  }
  return {
    rows,
    read() {
      const payload = {};
      for (const [name, read] of inputs) {
        const value = read();
        if (value !== undefined) payload[name] = value;
      }
      return payload;
    },
  };
}

export function fmt(value, digits = 1) {
  return value == null || Number.isNaN(value) ? "-" : Number(value).toFixed(digits);
}
export function powerCell(watts) {
  if (watts == null) return el("span", { class: "muted", text: "-" });
  const kw = watts / 1000;
  return el("span", { class: kw > 0.0005 ? "charge" : kw < -0.0005 ? "discharge" : "", text: `${kw > 0 ? "+" : ""}${kw.toFixed(2)} kW` });
}
export function time(iso) { return iso ? new Date(iso).toLocaleString() : "-"; }
