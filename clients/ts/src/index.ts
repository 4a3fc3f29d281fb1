export { FilesClient, toPurpose, type DownloadOptions, type FilesClientOptions, type ListOptions, type Progress, type Purpose, type Sha256, type UploadOptions } from "./files-client.js";
export { AuthenticationError, FilesError, IntegrityError, InvalidArgumentError, NotFoundError, PermissionDeniedError, TooLargeError, UnavailableError, toFilesError } from "./errors.js";
export type { RetryPolicy } from "./retry.js";
export type { UploadSource } from "./source.js";
export { FilePurpose, type File } from "../../../gen/ts/files/v1/files_pb.js";
