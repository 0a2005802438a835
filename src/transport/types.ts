// The one interface the engine talks to; rsync and sftp implement it and pass the same e2e suite.

export interface BatchFile {
  /** path relative to the source dir, '/'-separated, no leading './' */
  path: string;
  size: number;
}

export type FileOutcome =
  /** the destination confirmed it holds this file's content (bytes = bytes actually sent, if known) */
  | { ok: true; bytes: number }
  /** not confirmed: stays pending; vanished = the source file disappeared (not a failure) */
  | { ok: false; reason: string; vanished?: boolean };

export interface BatchResult {
  /** one entry per file of the batch */
  outcomes: Map<string, FileOutcome>;
  /** set when the whole batch failed (connection lost, host key refused, ...): a message for people */
  error?: string;
  /** lines worth logging at INFO (itemize lines, stats) when the config asks for them */
  infoLines: string[];
  /** total bytes sent over the wire, if the transport knows */
  bytesSent: number;
}

export interface Transport {
  /** "rsync → user@host:/dest" for logs */
  readonly description: string;
  sendBatch(files: BatchFile[], signal?: AbortSignal): Promise<BatchResult>;
  close(): Promise<void>;
}
