/**
 * Validation of the two user-supplied strings that end up inside haproxy.cfg: ACL rules and app ids.
 *
 * Bamboo pasted ACL text into the config unchecked, so a newline in a rule injected arbitrary HAProxy
 * directives (and a bad rule stopped every update). These checks are pure and shared: the api rejects
 * bad input at its edge, and buildTemplateData drops any record that still fails them.
 */

export type ValidationResult = { ok: true } | { ok: false; code: string; message: string };

/** Longest ACL accepted, in characters. HAProxy's own line limit is larger; rules are short in practice. */
export const MAX_ACL_LENGTH = 1024;

/** Longest app id accepted (Marathon ids are far shorter). */
export const MAX_APP_ID_LENGTH = 512;

const OK: ValidationResult = { ok: true };

/**
 * The index of the first character that cannot appear on one printable config line, or -1: every C0
 * control (TAB included: a rule has no reason to carry one), DEL, the C1 controls, and the Unicode
 * line and paragraph separators (some editors and log viewers break lines on them).
 */
export function firstNonPrintable(text: string): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || (c >= 0x80 && c <= 0x9f) || c === 0x2028 || c === 0x2029) return i;
  }
  return -1;
}

function describeChar(text: string, i: number): string {
  const c = text.charCodeAt(i);
  const names: Record<number, string> = {
    0x00: 'NUL', 0x09: 'tab', 0x0a: 'newline', 0x0d: 'carriage return', 0x7f: 'DEL',
    0x2028: 'line separator', 0x2029: 'paragraph separator',
  };
  const hex = `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
  return names[c] ? `${names[c]} (${hex})` : `control character ${hex}`;
}

/**
 * Checks an HAProxy ACL rule (the text after `acl <name>`), e.g. `hdr(host) -i app.example.com`.
 * Never throws: a failure comes back as `{ ok: false, code, message }` with a stable code:
 * `ACL_NOT_STRING`, `ACL_EMPTY`, `ACL_TOO_LONG`, `ACL_CONTROL_CHAR`.
 */
export function validateAcl(acl: string): ValidationResult {
  if (typeof acl !== 'string') {
    return { ok: false, code: 'ACL_NOT_STRING', message: 'the ACL must be a string' };
  }
  if (acl.trim() === '') {
    return { ok: false, code: 'ACL_EMPTY', message: 'the ACL is empty; give a rule such as "path_beg -i /app/"' };
  }
  if (acl.length > MAX_ACL_LENGTH) {
    return {
      ok: false,
      code: 'ACL_TOO_LONG',
      message: `the ACL is ${acl.length} characters long; at most ${MAX_ACL_LENGTH} are allowed`,
    };
  }
  const bad = firstNonPrintable(acl);
  if (bad >= 0) {
    return {
      ok: false,
      code: 'ACL_CONTROL_CHAR',
      message: `the ACL contains a ${describeChar(acl, bad)} at position ${bad}; an ACL must be one printable line`,
    };
  }
  return OK;
}

const SEGMENT = /^[A-Za-z0-9._-]+$/;

/**
 * Checks a Marathon app id: an absolute path `/seg/seg`, each segment made of letters, digits, `-`,
 * `.` and `_`. Marathon itself only allows lower case; data written by Bamboo may have mixed case,
 * so case is not enforced. Rejected: empty ids, whitespace, control characters, empty segments
 * (`//`, trailing `/`), `.` and `..` segments. Never throws; codes: `APP_ID_NOT_STRING`,
 * `APP_ID_EMPTY`, `APP_ID_TOO_LONG`, `APP_ID_NOT_ABSOLUTE`, `APP_ID_EMPTY_SEGMENT`,
 * `APP_ID_DOT_SEGMENT`, `APP_ID_BAD_CHAR`.
 */
export function validateAppId(id: string): ValidationResult {
  if (typeof id !== 'string') return { ok: false, code: 'APP_ID_NOT_STRING', message: 'the app id must be a string' };
  if (id === '' || id === '/') return { ok: false, code: 'APP_ID_EMPTY', message: 'the app id is empty' };
  if (id.length > MAX_APP_ID_LENGTH) {
    return { ok: false, code: 'APP_ID_TOO_LONG', message: `the app id is longer than ${MAX_APP_ID_LENGTH} characters` };
  }
  if (!id.startsWith('/')) {
    return { ok: false, code: 'APP_ID_NOT_ABSOLUTE', message: `the app id "${printable(id)}" must start with "/"` };
  }
  const segments = id.slice(1).split('/');
  for (const seg of segments) {
    if (seg === '') {
      return { ok: false, code: 'APP_ID_EMPTY_SEGMENT', message: `the app id "${printable(id)}" has an empty path segment` };
    }
    if (seg === '.' || seg === '..') {
      return { ok: false, code: 'APP_ID_DOT_SEGMENT', message: `the app id "${printable(id)}" has a "${seg}" segment` };
    }
    if (!SEGMENT.test(seg)) {
      return {
        ok: false,
        code: 'APP_ID_BAD_CHAR',
        message: `the app id "${printable(id)}" may only contain letters, digits, "-", "." and "_" between slashes`,
      };
    }
  }
  return OK;
}

/** The text with every non-printable character shown as \uXXXX, for safe use in messages. */
export function printable(text: string, max = 200): string {
  let out = '';
  for (let i = 0; i < text.length && out.length < max; i++) {
    const c = text.charCodeAt(i);
    out += c < 0x20 || c === 0x7f || (c >= 0x80 && c <= 0x9f) || c === 0x2028 || c === 0x2029
      ? `\\u${c.toString(16).padStart(4, '0')}`
      : text[i];
  }
  return text.length > max ? `${out}...` : out;
}
