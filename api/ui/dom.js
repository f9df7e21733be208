/**
 * The only way this UI builds DOM: elements from tag names, text from strings. Every value from the
 * API (app ids, rules, hosts, worker reasons) ends up as a Text node or an attribute value, never as
 * parsed HTML, so a rule such as `hdr(host) -i <img onerror=...>` is shown, not run.
 */

/**
 * Creates an element. Props: `class`, `text`, `dataset` (object), `value`/`checked`/`disabled`/`hidden`
 * (set as properties), `on<event>` (listener), anything else as an attribute (`true` = present,
 * `false`/null/undefined = absent). Children: nodes, strings and numbers (as text), nested arrays;
 * null, undefined and false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'hidden') el[key] = value;
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/** Appends children to a node (same rules as h). */
export function append(parent, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replaces a node's children. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** `document.getElementById`, failing loudly when the page and the script disagree. */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el;
}
