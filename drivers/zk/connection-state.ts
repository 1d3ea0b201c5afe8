// The session manager: owns the current node-zookeeper-client client and turns its events into
// ConnectionState (Curator's CONNECTED / SUSPENDED / LOST), replacing the client when the session
// is lost.
//
//   connected ──socket lost / read timeout──► suspended ──reconnected (same session)──► connected
//                                                │
//                   no reconnection within the negotiated session timeout (client-side timer),
//                   or the server says "expired" on reconnect
//                                                ▼
//                                             expired ──new client, new session──► connected
//
// - The library never reports expiry while partitioned (it only learns it on reconnect), so on
//   'suspended' a timer of the negotiated session timeout runs; when it fires the session is
//   treated as lost: 'expired', the old client is abandoned and a new one connects.
// - The library has no read timeout either: a server that keeps the socket open but stops
//   answering would hang everything. A watchdog drops the socket when nothing has been heard for
//   2/3 of the session timeout (the Java client's readTimeout; the library pings after 1/3 idle).
// - After a client-side expiry the old session may still be alive on the server (a restarted
//   server restores sessions with a fresh timeout). Before announcing the new session we close
//   the old one explicitly (reconnect with its id/password, then closeSession; bounded), so its
//   ephemeral znodes are gone by the time sessions$ tells callers to re-create theirs.
// - A new client announces the highest zxid seen so far, so it never reads older state than the
//   previous session did (servers behind it refuse the connection).
import { BehaviorSubject, ReplaySubject, Subject, type Observable } from 'rxjs';
import type { Logger } from 'pino';
import zookeeper from 'node-zookeeper-client';
import { digestAuth } from './acl.ts';
import {
  abandon,
  connectedSocket,
  createRawClient,
  dropConnection,
  instrument,
  replyZxid,
  seedZxid,
  waitClosed,
  type RawClient,
} from './client-internals.ts';
import { ConnectionLossError } from './errors.ts';
import { sessionIdHex } from './stat.ts';
import type { ConnectionState } from './types.ts';

const { State } = zookeeper;

export interface SessionOptions {
  connectString: string;
  sessionTimeoutMs: number;
  connectTimeoutMs: number;
  auth?: { user: string; password: string } | undefined;
  logger?: Logger | undefined;
}

interface OldSession {
  id: Buffer;
  password: Buffer;
}

interface Waiter {
  resolve(c: RawClient): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

export class ZkSession {
  /** Current state; replays the current value to new subscribers. */
  readonly state$: BehaviorSubject<ConnectionState> = new BehaviorSubject<ConnectionState>('suspended');
  /** Each new session id once it is connected; replays the current one. */
  readonly sessions$: Observable<string>;
  /** The client, every time a connection (same or new session) is established. */
  readonly connected$: Observable<RawClient>;

  private readonly sessions = new ReplaySubject<string>(1);
  private readonly connectedSubject = new Subject<RawClient>();
  private readonly opts: SessionOptions;
  private readonly log: Logger | undefined;

  private client!: RawClient;
  private generation = 0;
  /** Non-null iff state is 'connected'. */
  private live: RawClient | null = null;
  private currentSessionId = '';
  /** Whether the current client has ever had a session (there is something to lose). */
  private hadSession = false;
  private expiryTimer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private lastHeard = 0;
  /** performance.now() at which the newest request this session answered was sent (0: none yet). */
  private provenAt = 0;
  private lastCheck = 0;
  private checkPeriodMs = 1000;
  private negotiatedTimeoutMs: number;
  private zxidFloor = 0n;
  private toReap: OldSession | null = null;
  private waiters = new Set<Waiter>();
  private closed = false;

  constructor(opts: SessionOptions) {
    this.opts = opts;
    this.log = opts.logger;
    this.negotiatedTimeoutMs = opts.sessionTimeoutMs;
    this.sessions$ = this.sessions.asObservable();
    this.connected$ = this.connectedSubject.asObservable();
  }

  /** Start connecting; resolves on the first connected session, rejects after connectTimeoutMs. */
  async start(): Promise<void> {
    this.newClient();
    this.checkPeriodMs = Math.max(50, Math.floor(this.readTimeoutMs() / 4));
    this.lastCheck = Date.now();
    this.watchdog = setInterval(() => this.checkLiveness(), this.checkPeriodMs);
    this.watchdog.unref();
    try {
      await this.whenConnected(this.opts.connectTimeoutMs);
    } catch (e) {
      await this.close();
      throw new ConnectionLossError(undefined, `could not connect to ZooKeeper at ${this.opts.connectString} within ${this.opts.connectTimeoutMs} ms`, false);
    }
  }

  get state(): ConnectionState {
    return this.state$.value;
  }

  /** The session timeout the server granted (the requested one until the first connection). */
  get sessionTimeoutMs(): number {
    return this.negotiatedTimeoutMs;
  }

  get sessionId(): string {
    return this.currentSessionId;
  }

  /**
   * A request sent on `client` at `sentAt` (performance.now()) was answered. The server heard
   * from this session no earlier than that, so the session cannot expire before sentAt + the
   * session timeout. Notifications prove nothing (the server sends them unasked); a reply read
   * late, after our process was frozen, proves only its old send time.
   */
  answered(client: RawClient, sentAt: number): void {
    if (client === this.live && sentAt > this.provenAt) this.provenAt = sentAt;
  }

  /** Milliseconds since the newest request this session answered was sent (Infinity: none). */
  provenAgoMs(): number {
    return this.live && this.provenAt > 0 ? performance.now() - this.provenAt : Infinity;
  }

  /** The connected client, or null when not connected. */
  current(): RawClient | null {
    return this.live;
  }

  /** The connected client; waits for a connection at most timeoutMs, then ConnectionLossError. */
  whenConnected(timeoutMs: number, path?: string): Promise<RawClient> {
    if (this.live) return Promise.resolve(this.live);
    if (this.closed) return Promise.reject(new ConnectionLossError(path, 'ZooKeeper store is closed', false));
    return new Promise<RawClient>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new ConnectionLossError(path, `not connected to ZooKeeper (${this.state}) after ${timeoutMs} ms`, false));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** Highest zxid seen in any reply, across all sessions of this store. */
  lastZxid(): bigint {
    const z = replyZxid(this.client);
    return z > this.zxidFloor ? z : this.zxidFloor;
  }

  /** For tests and admin tools: the current session's id and password. */
  sessionCredentials(): { id: Buffer; password: Buffer } {
    return { id: this.client.getSessionId(), password: this.client.getSessionPassword() };
  }

  /** Fault injection: drop the current TCP connection (the library reconnects, same session). */
  dropConnection(): void {
    dropConnection(this.client);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new ConnectionLossError(undefined, 'ZooKeeper store is closed', false));
    }
    this.waiters.clear();
    const c = this.client;
    const wasLive = this.live === c;
    this.live = null;
    this.generation++;
    if (wasLive) {
      // closeSession: the server deletes our ephemerals now rather than after the timeout.
      c.close();
      await waitClosed(c, Math.min(2000, this.opts.connectTimeoutMs));
    }
    abandon(c);
    this.state$.complete();
    this.sessions.complete();
    this.connectedSubject.complete();
  }

  // -------------------------------------------------------------------------------------------

  private readTimeoutMs(): number {
    return Math.max(100, Math.floor((this.negotiatedTimeoutMs * 2) / 3));
  }

  private setState(s: ConnectionState): void {
    if (this.state$.value !== s && !this.closed) {
      this.log?.info({ zk: this.opts.connectString, from: this.state$.value, to: s, session: this.currentSessionId }, 'zookeeper connection state');
      this.state$.next(s);
    }
  }

  private newClient(): void {
    const gen = ++this.generation;
    const requested = this.opts.sessionTimeoutMs;
    const c = createRawClient(this.opts.connectString, {
      sessionTimeout: requested,
      spinDelay: Math.min(1000, Math.max(50, Math.floor(requested / 10))),
    });
    seedZxid(c, this.zxidFloor);
    if (this.opts.auth) c.addAuthInfo('digest', digestAuth(this.opts.auth.user, this.opts.auth.password));
    instrument(c, {
      onSocketConnected: () => {
        this.lastHeard = Date.now();
      },
      onData: () => {
        this.lastHeard = Date.now();
      },
    });
    c.on('state', (s) => {
      if (gen === this.generation && !this.closed) this.onClientState(c, s);
    });
    this.client = c;
    this.hadSession = false;
    c.connect();
  }

  private onClientState(c: RawClient, s: InstanceType<typeof State>): void {
    if (s === State.SYNC_CONNECTED) {
      this.onConnected(c);
    } else if (s === State.DISCONNECTED) {
      this.onDisconnected(c);
    } else if (s === State.EXPIRED) {
      this.log?.warn({ zk: this.opts.connectString, session: this.currentSessionId }, 'zookeeper session expired (reported by the server)');
      this.loseSession(c, false);
    } else if (s === State.AUTH_FAILED) {
      this.log?.error({ zk: this.opts.connectString }, 'zookeeper authentication failed');
    }
  }

  private onConnected(c: RawClient): void {
    if (this.expiryTimer) {
      clearTimeout(this.expiryTimer);
      this.expiryTimer = null;
    }
    this.hadSession = true;
    this.negotiatedTimeoutMs = c.getSessionTimeout();
    const reap = this.toReap;
    if (reap) {
      this.toReap = null;
      const gen = this.generation;
      void this.reapSession(reap).then(() => {
        // Still the same client, still connected?
        if (gen === this.generation && !this.closed && c.getState() === State.SYNC_CONNECTED) this.announce(c);
      });
      return;
    }
    this.announce(c);
  }

  private announce(c: RawClient): void {
    const id = sessionIdHex(c.getSessionId());
    const isNew = id !== this.currentSessionId;
    if (isNew) this.provenAt = 0;
    this.currentSessionId = id;
    this.live = c;
    this.setState('connected');
    if (isNew) this.sessions.next(id);
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.resolve(c);
    }
    this.waiters.clear();
    this.connectedSubject.next(c);
  }

  private onDisconnected(c: RawClient): void {
    if (this.live === c) this.live = null;
    if (!this.hadSession) return; // never had a session: nothing to suspend or lose
    this.setState('suspended');
    if (!this.expiryTimer) {
      const timeout = this.negotiatedTimeoutMs;
      this.expiryTimer = setTimeout(() => {
        this.expiryTimer = null;
        if (this.client !== c || this.live === c || this.closed) return;
        this.log?.warn({ zk: this.opts.connectString, session: this.currentSessionId, timeoutMs: timeout }, 'zookeeper session lost: no reconnection within the session timeout');
        this.loseSession(c, true);
      }, timeout);
      this.expiryTimer.unref();
    }
  }

  /** The session of `c` is gone (or must be treated as gone): report it and start a new one. */
  private loseSession(c: RawClient, closeOnServer: boolean): void {
    if (this.expiryTimer) {
      clearTimeout(this.expiryTimer);
      this.expiryTimer = null;
    }
    if (this.live === c) this.live = null;
    const z = replyZxid(c);
    if (z > this.zxidFloor) this.zxidFloor = z;
    if (closeOnServer) this.toReap = { id: c.getSessionId(), password: c.getSessionPassword() };
    abandon(c);
    this.setState('expired');
    this.newClient();
  }

  /** Close an old session we gave up on; bounded by connectTimeoutMs, best effort. */
  private async reapSession(old: OldSession): Promise<void> {
    const r = createRawClient(this.opts.connectString, {
      sessionTimeout: this.opts.sessionTimeoutMs,
      spinDelay: 50,
      sessionId: old.id,
      sessionPassword: old.password,
    });
    const oldId = sessionIdHex(old.id);
    const outcome = await new Promise<string>((res) => {
      const timer = setTimeout(() => res('timeout'), Math.min(this.opts.connectTimeoutMs, this.negotiatedTimeoutMs));
      r.on('state', (s) => {
        if (s === State.SYNC_CONNECTED) {
          clearTimeout(timer);
          r.close();
          void waitClosed(r, 2000).then((ok) => res(ok ? 'closed' : 'close-timeout'));
        } else if (s === State.EXPIRED) {
          clearTimeout(timer);
          res('already-expired');
        }
      });
      r.connect();
    });
    abandon(r);
    this.log?.info({ zk: this.opts.connectString, session: oldId, outcome }, 'zookeeper old session reaped');
  }

  /** Drop a connection that has been silent for the read timeout (partition, frozen server). */
  private checkLiveness(): void {
    if (this.closed) return;
    const now = Date.now();
    const sinceLastCheck = now - this.lastCheck;
    this.lastCheck = now;
    // Our own event loop was blocked (GC, CPU-bound work): replies may be waiting unread in the
    // socket, since timers run before I/O. Judge the server on the next round, not this one.
    if (sinceLastCheck > 2 * this.checkPeriodMs) return;
    const sock = connectedSocket(this.client);
    if (!sock) return;
    const silentMs = now - this.lastHeard;
    if (silentMs > this.readTimeoutMs()) {
      this.log?.warn({ zk: this.opts.connectString, silentMs }, 'zookeeper connection silent past the read timeout: dropping it');
      this.lastHeard = Date.now();
      dropConnection(this.client);
    }
  }
}
