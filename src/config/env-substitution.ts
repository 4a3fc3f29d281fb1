/** Thrown when a `${env.NAME}` reference has no value and no default. */
export class MissingEnvError extends Error {
  constructor(
    readonly variable: string,
    readonly path: string,
  ) {
    super(`${path}: environment variable ${variable} is not set (write \${env.${variable}:=default} to give a default)`);
  }
}

// ${env.NAME}, ${env.NAME:=default} (default when unset or empty), ${env.NAME:+value} (value when set).
const REFERENCE = /\$\{env\.([A-Za-z_][A-Za-z0-9_]*)(?:(:=|:\+)([^}]*))?\}/g;

/**
 * Replaces Llama Stack-style env references in every string of a parsed YAML document.
 * Substituting after parsing means a value can never change the document's structure.
 */
export function substituteEnv(value: unknown, env: NodeJS.ProcessEnv, path = ""): unknown {
  if (typeof value === "string") return substituteString(value, env, path || "(document)");
  if (Array.isArray(value)) return value.map((item, i) => substituteEnv(item, env, `${path}[${i}]`));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, substituteEnv(item, env, path ? `${path}.${key}` : key)]),
    );
  }
  return value;
}

function substituteString(text: string, env: NodeJS.ProcessEnv, path: string): string {
  return text.replace(REFERENCE, (_match, name: string, operator: string | undefined, operand: string | undefined) => {
    const current = env[name];
    const isSet = current !== undefined && current !== "";
    if (operator === ":=") return isSet ? current : (operand ?? "");
    if (operator === ":+") return isSet ? (operand ?? "") : "";
    if (current === undefined) throw new MissingEnvError(name, path);
    return current;
  });
}
