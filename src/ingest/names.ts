// What one file name (a path segment) may hold. Every name from outside passes here,
// whatever brought it: a URL path, a multipart filename, a legacy X-File-Path, a watched
// file's name, a config `dest`. A name is refused, never rewritten:
// - Not normalized to NFC, refused unless already NFC (macOS writes decomposed "é").
//   Rewriting would land a name the client did not send (the 202's dest, its idempotency
//   key and its retries would disagree with it), and two host files ("é" composed and
//   decomposed) would map to one container file, which a mirror could then delete
//   through the other. A refused upload is a 400 the client can fix; a refused watched
//   file stays in its folder, logged.
// - Nothing invisible (Unicode Cf: bidi controls, zero-width and joiner characters, soft
//   hyphens, tags), no noncharacters, no name made only of whitespace or default-ignorable
//   characters: each makes a name display as something it is not.
// - Nothing that reads as a separator: backslashes, "/" look-alikes, and names that
//   become a separator or a dot reference under NFKC.
// - No U+FFFD: it stands where a decoder met bytes that were not UTF-8 (busboy for a
//   multipart filename, node for a file name on disk), so the real name is unknown.

// Symbols that render as "/" or "\" (Unicode confusables.txt), minus the letters and
// ideographs in that list (ノ, 丿, 丶, Ⳇ), which are real text. NFKC folds the fullwidth
// and small forms (U+FF0F, U+FF3C, U+FE68) to "/" or "\", so lookalikeProblem sees those.
const SLASH_LOOKALIKES = [
  '\u2044', // ⁄ FRACTION SLASH
  '\u2215', // ∕ DIVISION SLASH
  '\u2571', // ╱ BOX DRAWINGS LIGHT DIAGONAL UPPER RIGHT TO LOWER LEFT
  '\u27cb', // ⟋ MATHEMATICAL RISING DIAGONAL
  '\u29f8', // ⧸ BIG SOLIDUS
  '\u1735', // ᜵ PHILIPPINE SINGLE PUNCTUATION
  '\u2041', // ⁁ CARET INSERTION POINT
  '\u2f03', // ⼃ KANGXI RADICAL SLASH
  '\u31d3', // ㇓ CJK STROKE SP
  '\u{1d23a}', // 𝈺 GREEK INSTRUMENTAL NOTATION SYMBOL-47
  '\u2216', // ∖ SET MINUS
  '\u27cd', // ⟍ MATHEMATICAL FALLING DIAGONAL
  '\u29f5', // ⧵ REVERSE SOLIDUS OPERATOR
  '\u29f9', // ⧹ BIG REVERSE SOLIDUS
  '\u2572', // ╲ BOX DRAWINGS LIGHT DIAGONAL UPPER LEFT TO LOWER RIGHT
  '\u31d4', // ㇔ CJK STROKE D
  '\u2f02', // ⼂ KANGXI RADICAL DOT
  '\u0337', // COMBINING SHORT SOLIDUS OVERLAY (strikes the letter before it)
  '\u0338', // COMBINING LONG SOLIDUS OVERLAY
];

// The first rule that matches a character names it (and may say why). Bidi controls
// are Cf too; they come first only to be named as such.
const CHARACTER_RULES: [RegExp, string, string?][] = [
  [/\p{Cc}/u, 'control character'],
  [/\\/u, 'a backslash'],
  [/\p{Bidi_Control}/u, 'bidi control'],
  [/\p{Cf}/u, 'invisible format character'],
  // Line and paragraph separators forge log lines.
  [/[\p{Zl}\p{Zp}]/u, 'line separator'],
  // for..of and the u flag see an unpaired surrogate as a code point of its own.
  [/\p{Cs}/u, 'unpaired surrogate'],
  [/\p{Noncharacter_Code_Point}/u, 'noncharacter'],
  [/\uFFFD/u, 'replacement character', ': the name was not valid UTF-8'],
  // An alternation, not a class: a class with combining marks in it reads as a trap.
  [new RegExp(SLASH_LOOKALIKES.join('|'), 'u'), 'slash look-alike'],
];
// One pass over the name finds whether any rule applies; only a refused name is classified.
const FORBIDDEN = new RegExp(CHARACTER_RULES.map(([rule]) => rule.source).join('|'), 'u');

const NOTHING_VISIBLE = /^[\p{White_Space}\p{Default_Ignorable_Code_Point}]+$/u;

const hex = (cp: number): string => `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;

/** Why `name` (one path segment, not empty, not "." or "..") may not be a file name, or undefined when it may. */
export function nameProblem(name: string): string | undefined {
  const bad = FORBIDDEN.exec(name)?.[0];
  if (bad !== undefined) {
    const [, what, why = ''] = CHARACTER_RULES.find(([rule]) => rule.test(bad)) ?? [FORBIDDEN, 'forbidden character'];
    return `contains ${what} ${hex(bad.codePointAt(0) ?? 0)}${why}`;
  }
  if (name.normalize('NFC') !== name) return 'is not in Unicode NFC (composed) form: normalize it to NFC first';
  if (NOTHING_VISIBLE.test(name)) return 'has nothing visible: only whitespace or invisible characters';
  return lookalikeProblem(name);
}

// Names that become a separator or a dot reference once a later layer (a filesystem,
// a shell tool, a human) applies compatibility normalization.
function lookalikeProblem(name: string): string | undefined {
  const folded = name.normalize('NFKC');
  if (folded === name) return undefined;
  if (folded.includes('/') || folded.includes('\\')) return 'normalizes to a name containing a slash';
  if (folded === '.' || folded === '..') return `normalizes to "${folded}"`;
  return undefined;
}
