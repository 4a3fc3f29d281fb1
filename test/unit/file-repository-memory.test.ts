import { fileRepositoryContract } from "../contract/file-repository.contract.js";
import { MemoryFileRepository } from "../support/memory-file-repository.js";

fileRepositoryContract("memory", async () => new MemoryFileRepository());
