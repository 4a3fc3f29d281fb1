/**
 * A cached Python virtualenv holding the official `openai` SDK, for tests that drive the REST API
 * from Python. `ensureOpenAiPython()` creates it once under the test cache and returns its interpreter.
 */
import { cachedInstall, installVenv, venvPython } from "./cached-install.js";

/** Pinned exactly so an SDK release cannot change what the test proves without a code change. */
export const OPENAI_PYTHON_VERSION = "3.57.0";

/** The interpreter of the cached venv with `openai==OPENAI_PYTHON_VERSION`, installed on first use. */
export const ensureOpenAiPython = cachedInstall({
  what: `the Python openai SDK ${OPENAI_PYTHON_VERSION}`,
  name: "openai-venv",
  pinned: { openai: OPENAI_PYTHON_VERSION },
  result: venvPython,
  install: (dir) => installVenv(dir, { openai: OPENAI_PYTHON_VERSION }, ["openai"]),
});
