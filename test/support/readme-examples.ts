/**
 * The README's examples, for the tests that run them: the fenced blocks of one language under one
 * heading, so the documentation cannot drift from the code.
 */

/** The fenced blocks of `lang` between `heading` and the next heading of the same or a higher level. */
export function codeBlocks(markdown: string, heading: string, lang: string): string[] {
  const start = markdown.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`README has no '${heading}' section`);
  const level = /^#+/.exec(heading)![0].length;
  const rest = markdown.slice(start + heading.length + 2);
  const next = new RegExp(`^#{1,${level}} `, "m").exec(rest);
  const section = next ? rest.slice(0, next.index) : rest;
  return [...section.matchAll(new RegExp("^```" + lang + "\\n([\\s\\S]*?)^```$", "gm"))].map((m) => m[1]!);
}
