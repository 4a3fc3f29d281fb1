import { FilePurpose } from "../../gen/ts/files/v1/files_pb.js";

/**
 * OpenAI's purpose names and the API enum values they travel as, for the clients that speak the
 * enum (the `files` command and the browser page). The server keeps its own mapping in its transport.
 */
export const PURPOSES: ReadonlyMap<string, FilePurpose> = new Map([
  ["assistants", FilePurpose.ASSISTANTS],
  ["assistants_output", FilePurpose.ASSISTANTS_OUTPUT],
  ["batch", FilePurpose.BATCH],
  ["batch_output", FilePurpose.BATCH_OUTPUT],
  ["fine-tune", FilePurpose.FINE_TUNE],
  ["fine-tune-results", FilePurpose.FINE_TUNE_RESULTS],
  ["vision", FilePurpose.VISION],
  ["user_data", FilePurpose.USER_DATA],
  ["evals", FilePurpose.EVALS],
]);

const NAMES = new Map([...PURPOSES].map(([name, value]) => [value, name]));

/** The purpose's OpenAI name, or undefined for UNSPECIFIED and values this client does not know. */
export function purposeNameOf(purpose: FilePurpose): string | undefined {
  return NAMES.get(purpose);
}
