import type { File as StoredFile } from "../../gen/ts/files/v1/files_pb.js";
import { downloadFile } from "./download.js";
import { FileList } from "./file-list.js";
import { createFilesClient, describeError, isCancel } from "./files-client.js";
import { formatBytes, formatRate, percent, purposeFromName } from "./format.js";
import { uploadInParts } from "./upload.js";

function byId<T extends HTMLElement>(id: string, type: { new (): T }): T {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`the page has no ${type.name} #${id}`);
  return el;
}

const status = byId("status", HTMLDivElement);
const apiKey = byId("api-key", HTMLInputElement);
const uploadForm = byId("upload-form", HTMLFormElement);
const fileInput = byId("file-input", HTMLInputElement);
const dropZone = byId("drop-zone", HTMLDivElement);
const uploadPurpose = byId("upload-purpose", HTMLSelectElement);
const uploadButton = byId("upload-button", HTMLButtonElement);
const cancelButton = byId("cancel-upload", HTMLButtonElement);
const uploadBar = byId("upload-progress", HTMLProgressElement);
const uploadText = byId("upload-progress-text", HTMLSpanElement);
const listControls = byId("list-controls", HTMLFormElement);
const purposeFilter = byId("purpose-filter", HTMLSelectElement);
const pageSize = byId("page-size", HTMLSelectElement);
const downloadBar = byId("download-progress", HTMLProgressElement);
const downloadText = byId("download-progress-text", HTMLSpanElement);
const confirmDialog = byId("confirm-delete", HTMLDialogElement);
const confirmName = byId("confirm-delete-name", HTMLElement);

/** Everything the page has to say goes through the one live region, errors with the server's message. */
function announce(kind: "ok" | "error" | "info", message: string): void {
  status.dataset.kind = kind;
  status.textContent = message;
}

const client = createFilesClient(() => apiKey.value);

const list = new FileList(
  client,
  {
    rows: byId("file-rows", HTMLTableSectionElement),
    caption: byId("page-info", HTMLElement),
    empty: byId("empty-list", HTMLElement),
    prev: byId("prev-page", HTMLButtonElement),
    next: byId("next-page", HTMLButtonElement),
  },
  { download: (f) => void download(f), remove: (f) => void remove(f) },
  purposeFromName(purposeFilter.value),
  Number(pageSize.value),
);

/** Runs a list action, reporting a failure instead of leaving a stale page silently. */
async function listing(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (err) {
    announce("error", `Could not list files: ${describeError(err)}`);
  }
}

const resetList = () => listing(() => list.reset(purposeFromName(purposeFilter.value), Number(pageSize.value)));
listControls.addEventListener("submit", (e) => {
  e.preventDefault();
  void resetList();
});
purposeFilter.addEventListener("change", () => void resetList());
pageSize.addEventListener("change", () => void resetList());
byId("next-page", HTMLButtonElement).addEventListener("click", () => void listing(() => list.nextPage()));
byId("prev-page", HTMLButtonElement).addEventListener("click", () => void listing(() => list.previousPage()));

let uploading: AbortController | undefined;

uploadForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const file = fileInput.files?.[0];
  if (!file || uploading) return;
  void upload(file);
});

cancelButton.addEventListener("click", () => uploading?.abort());

async function upload(file: File): Promise<void> {
  const controller = new AbortController();
  uploading = controller;
  uploadButton.disabled = true;
  cancelButton.disabled = false;
  uploadBar.value = 0;
  announce("info", `Uploading ${file.name}…`);
  try {
    const stored = await uploadInParts(
      client,
      file,
      purposeFromName(uploadPurpose.value),
      ({ sent, total, seconds, stage }) => {
        const pct = percent(sent, total);
        uploadBar.value = pct;
        uploadText.textContent =
          stage === "assembling"
            ? `${pct}%, ${formatBytes(total)} sent; assembling…`
            : `${pct}%, ${formatBytes(sent)} of ${formatBytes(total)} ${formatRate(sent, seconds)}`.trim();
      },
      controller.signal,
    );
    uploadText.textContent = `100%, ${formatBytes(stored.bytes)} stored`;
    announce("ok", `Uploaded ${stored.filename} as ${stored.id}.`);
    fileInput.value = ""; // the purpose stays chosen for the next file
    await resetList();
  } catch (err) {
    if (controller.signal.aborted || isCancel(err)) {
      uploadText.textContent = "Cancelled";
      announce("info", `Upload of ${file.name} cancelled.`);
    } else {
      announce("error", `Upload of ${file.name} failed: ${describeError(err)}`);
    }
  } finally {
    uploading = undefined;
    uploadButton.disabled = false;
    cancelButton.disabled = true;
  }
}

// Drag and drop puts the dropped file into the same input, so the form stays the one way in.
for (const type of ["dragenter", "dragover"] as const) {
  dropZone.addEventListener(type, (e) => {
    e.preventDefault();
    dropZone.classList.add("dragging");
  });
}
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dragging"));
dropZone.addEventListener("drop", (e) => {
  e.preventDefault();
  dropZone.classList.remove("dragging");
  const files = e.dataTransfer?.files;
  if (files && files.length > 0) {
    fileInput.files = files;
    announce("info", `Chosen: ${files[0]?.name ?? ""}. Press Upload to send it.`);
  }
});

async function download(file: StoredFile): Promise<void> {
  downloadBar.value = 0;
  downloadText.textContent = "";
  announce("info", `Downloading ${file.filename}…`);
  try {
    const got = await downloadFile(client, file.id, ({ received, total, seconds }) => {
      const pct = percent(received, total);
      downloadBar.value = pct;
      downloadText.textContent = `${pct}%, ${formatBytes(received)} of ${formatBytes(total)} ${formatRate(received, seconds)}`.trim();
    });
    announce("ok", `Downloaded ${got.filename}.`);
  } catch (err) {
    announce("error", `Download of ${file.filename} failed: ${describeError(err)}`);
  }
}

async function remove(file: StoredFile): Promise<void> {
  confirmName.textContent = file.filename;
  confirmDialog.returnValue = "";
  const closed = new Promise<string>((resolve) =>
    confirmDialog.addEventListener("close", () => resolve(confirmDialog.returnValue), { once: true }),
  );
  confirmDialog.showModal();
  if ((await closed) !== "delete") return;
  try {
    await client.delete(file.id);
    announce("ok", `Deleted ${file.filename}.`);
  } catch (err) {
    announce("error", `Could not delete ${file.filename}: ${describeError(err)}`);
  }
  await listing(() => list.load());
}

void listing(() => list.load());
