// What the Manager runs: a controller, or a background service (keepalive, console follower).
export interface Runnable {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Dry run: what it would do now, one line per action; changes nothing. */
  plan?(): Promise<string[]>;
}
