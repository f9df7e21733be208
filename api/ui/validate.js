/**
 * The server's checks on what an operator types (common/core/acl.ts), repeated here so a mistake shows
 * while typing. The server stays the judge: the editor still sends what was typed and shows the
 * server's own message when it refuses, so a UI that drifts from the server never blocks a valid rule.
 */

/** Longest rule the server accepts, in characters (MAX_ACL_LENGTH in common/core/acl.ts). */
export const MAX_ACL_LENGTH = 1024;
export const MAX_APP_ID_LENGTH = 512;

const NAMES = {
  0x00: 'NUL', 0x09: 'tab', 0x0a: 'newline', 0x0d: 'carriage return', 0x7f: 'DEL',
  0x2028: 'line separator', 0x2029: 'paragraph separator',
};

/** Index of the first character that cannot be on one printable config line, or -1. */
export function firstNonPrintable(text) {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || (c >= 0x80 && c <= 0x9f) || c === 0x2028 || c === 0x2029) return i;
  }
  return -1;
}

function describe(text, i) {
  const c = text.charCodeAt(i);
  const hex = `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
  return NAMES[c] ? `${NAMES[c]} (${hex})` : `control character ${hex}`;
}

/** `null` when the rule is acceptable, else `{ code, message }` with the server's validator codes. */
export function checkAcl(acl) {
  if (acl.trim() === '') return { code: 'ACL_EMPTY', message: 'The rule is empty; give a condition such as path_beg -i /app/' };
  if (acl.length > MAX_ACL_LENGTH) {
    return { code: 'ACL_TOO_LONG', message: `The rule is ${acl.length} characters long; at most ${MAX_ACL_LENGTH} are allowed` };
  }
  const bad = firstNonPrintable(acl);
  if (bad >= 0) {
    return { code: 'ACL_CONTROL_CHAR', message: `The rule contains a ${describe(acl, bad)} at position ${bad}; a rule must be one printable line` };
  }
  return null;
}

const SEGMENT = /^[A-Za-z0-9._-]+$/;

/** `null` when the id is a valid Marathon app id (`/group/app`), else `{ code, message }`. */
export function checkAppId(id) {
  if (id === '' || id === '/') return { code: 'APP_ID_EMPTY', message: 'Give the Marathon app id, such as /group/app' };
  if (id.length > MAX_APP_ID_LENGTH) return { code: 'APP_ID_TOO_LONG', message: `The app id is longer than ${MAX_APP_ID_LENGTH} characters` };
  if (!id.startsWith('/')) return { code: 'APP_ID_NOT_ABSOLUTE', message: 'The app id must start with "/", such as /group/app' };
  for (const seg of id.slice(1).split('/')) {
    if (seg === '') return { code: 'APP_ID_EMPTY_SEGMENT', message: 'The app id has an empty part ("//" or a trailing "/")' };
    if (seg === '.' || seg === '..') return { code: 'APP_ID_DOT_SEGMENT', message: `The app id has a "${seg}" part` };
    if (!SEGMENT.test(seg)) return { code: 'APP_ID_BAD_CHAR', message: 'The app id may only contain letters, digits, "-", "." and "_" between slashes' };
  }
  return null;
}
