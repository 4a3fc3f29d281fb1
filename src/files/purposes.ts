/** Purposes a client may upload with (OpenAI's list). */
export const UPLOAD_PURPOSES = ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"] as const;

/** Purposes only a server produces. */
export const OUTPUT_PURPOSES = ["assistants_output", "batch_output", "fine-tune-results"] as const;

export type UploadPurpose = (typeof UPLOAD_PURPOSES)[number];
export type Purpose = UploadPurpose | (typeof OUTPUT_PURPOSES)[number];

export const ALL_PURPOSES: readonly Purpose[] = [...UPLOAD_PURPOSES, ...OUTPUT_PURPOSES];

export function isPurpose(value: string): value is Purpose {
  return (ALL_PURPOSES as readonly string[]).includes(value);
}

export function isUploadPurpose(value: string): value is UploadPurpose {
  return (UPLOAD_PURPOSES as readonly string[]).includes(value);
}
