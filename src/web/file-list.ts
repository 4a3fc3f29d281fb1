import { ListOrder, type File as StoredFile, type FilePurpose } from "../../gen/ts/files/v1/files_pb.js";
import type { FilesClient } from "./files-client.js";
import { formatBytes, formatTime, purposeName } from "./format.js";

export interface FileListElements {
  rows: HTMLTableSectionElement;
  caption: HTMLElement;
  empty: HTMLElement;
  prev: HTMLButtonElement;
  next: HTMLButtonElement;
}

export interface FileListActions {
  download(file: StoredFile): void;
  remove(file: StoredFile): void;
}

/**
 * One page of ListFiles, newest first, with cursor paging: "next" starts after the page's last
 * id; "previous" goes back to the cursor the current page started from.
 */
export class FileList {
  /** The `after` cursor of every page up to the current one; "" is the first page. */
  private cursors: string[] = [""];
  private purpose: FilePurpose;
  private limit: number;
  private lastId: string | undefined;
  /** Counts loads, so a slow answer to an older request never overwrites a newer page. */
  private loads = 0;

  constructor(
    private readonly client: FilesClient,
    private readonly el: FileListElements,
    private readonly actions: FileListActions,
    purpose: FilePurpose,
    limit: number,
  ) {
    this.purpose = purpose;
    this.limit = limit;
  }

  /** A new filter or page size starts again from the first page. */
  async reset(purpose: FilePurpose, limit: number): Promise<void> {
    this.purpose = purpose;
    this.limit = limit;
    this.cursors = [""];
    await this.load();
  }

  async nextPage(): Promise<void> {
    if (this.lastId === undefined) return;
    this.cursors.push(this.lastId);
    await this.load();
  }

  async previousPage(): Promise<void> {
    if (this.cursors.length <= 1) return;
    this.cursors.pop();
    await this.load();
  }

  /** Loads the current page again; if it has become empty (its files deleted), steps back a page. */
  async load(): Promise<void> {
    const load = ++this.loads;
    const after = this.cursors.at(-1) ?? "";
    const page = await this.client.rpc.listFiles({ after, limit: this.limit, purpose: this.purpose, order: ListOrder.DESC });
    if (load !== this.loads) return;
    if (page.data.length === 0 && this.cursors.length > 1) {
      this.cursors.pop();
      return this.load();
    }
    this.lastId = page.lastId;
    this.render(page.data);
    const number = this.cursors.length;
    const filter = this.purpose ? `purpose ${purposeName(this.purpose)}` : "all purposes";
    this.el.caption.textContent = `Page ${number}, ${page.data.length} file${page.data.length === 1 ? "" : "s"} (${filter}, newest first)`;
    this.el.prev.disabled = number <= 1;
    this.el.next.disabled = !page.hasMore;
  }

  private render(files: StoredFile[]): void {
    this.el.empty.hidden = files.length > 0;
    this.el.rows.replaceChildren(...files.map((f) => this.row(f)));
  }

  private row(file: StoredFile): HTMLTableRowElement {
    const tr = document.createElement("tr");
    tr.dataset.fileId = file.id;
    const cell = (text: string, className?: string) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (className) td.className = className;
      return td;
    };
    const id = document.createElement("td");
    const code = document.createElement("code");
    code.textContent = file.id;
    id.append(code);
    const actions = cell("", "actions");
    actions.append(
      this.button("Download", `Download ${file.filename}`, () => this.actions.download(file)),
      " ",
      this.button("Delete", `Delete ${file.filename}`, () => this.actions.remove(file)),
    );
    tr.append(
      cell(file.filename, "name"),
      cell(purposeName(file.purpose), "purpose"),
      cell(formatBytes(file.bytes), "number"),
      cell(formatTime(file.createdAt)),
      id,
      actions,
    );
    return tr;
  }

  private button(text: string, label: string, onClick: () => void): HTMLButtonElement {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    // The visible word is the same on every row; the accessible name says which file.
    b.setAttribute("aria-label", label);
    b.addEventListener("click", onClick);
    return b;
  }
}
