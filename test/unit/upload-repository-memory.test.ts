import { uploadRepositoryContract } from "../contract/upload-repository.contract.js";
import { MemoryUploadRepository } from "../support/memory-upload-repository.js";

uploadRepositoryContract("memory", async () => ({ uploads: new MemoryUploadRepository(), close: async () => {} }));
