// A libvirt connection that survives libvirtd restarts: it reconnects with back-off, runs
// CONNECT_OPEN again with the same URI, turns keepalive on and re-registers its lifecycle event
// callback. Calls made while it is not connected fail at once with LibvirtConnectionError.

import { BehaviorSubject, distinctUntilChanged, Subject, type Observable, type Subscription } from 'rxjs';
import { LibvirtClient, type LibvirtClientOptions } from './client.ts';
import { DomainEventId, DrvFeature } from './constants.ts';
import { LibvirtConnectionError } from './errors.ts';
import {
  describeTarget,
  Transport,
  type CallOptions,
  type KeepaliveOptions,
  type KeepaliveStats,
  type RemoteEvent,
  type RpcChannel,
  type SocketTarget,
  type TransportOptions,
} from './transport.ts';

export type ConnectionState = 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface LibvirtConnectionOptions extends TransportOptions, LibvirtClientOptions {
  target: SocketTarget;
  /** URI passed to CONNECT_OPEN, e.g. `qemu:///system` or `test:///default`. */
  uri: string;
  /** virConnectFlags for CONNECT_OPEN (default 0). */
  openFlags?: number;
  /** Reconnect back-off: starts at initialDelayMs (default 100), doubles up to maxDelayMs (default 5000). */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Keepalive in both directions (default 5 s × 5); false turns it off. */
  keepalive?: KeepaliveOptions | false;
  /** Register a LIFECYCLE callback on every (re)connect so lifecycle$ flows (default true). */
  lifecycleEvents?: boolean;
  /** Bound on each handshake call (default 10 s). */
  handshakeTimeoutMs?: number;
}

/** Routes calls to the current transport and merges the event streams of successive transports. */
class SwitchableChannel implements RpcChannel {
  transport: Transport | undefined;
  readonly events = new Subject<RemoteEvent>();
  readonly events$: Observable<RemoteEvent> = this.events.asObservable();

  constructor(private readonly label: string) {}

  call(proc: number, args?: Uint8Array, opts?: CallOptions): Promise<Buffer> {
    const t = this.transport;
    if (!t) return Promise.reject(new LibvirtConnectionError(`not connected to libvirtd at ${this.label}`));
    return t.call(proc, args, opts);
  }
}

export class LibvirtConnection extends LibvirtClient {
  private readonly ch: SwitchableChannel;
  private readonly stateSubject = new BehaviorSubject<ConnectionState>('connecting');
  private closing = false;
  private current: Transport | undefined;
  private wake: (() => void) | undefined;
  private lastError: unknown;
  private readonly finished: Promise<void>;
  private connects = 0;

  /** connecting → connected → disconnected → connecting … → closed (then completes). */
  readonly state$: Observable<ConnectionState>;

  /** Starts connecting in the background; see ready() and LibvirtConnection.open(). */
  constructor(private readonly opts: LibvirtConnectionOptions) {
    const ch = new SwitchableChannel(describeTarget(opts.target));
    super(ch, opts);
    this.ch = ch;
    this.state$ = this.stateSubject.pipe(distinctUntilChanged());
    this.finished = this.run();
  }

  /** Connects and waits for the first successful handshake; closes and rejects if it does not come in time. */
  static async open(opts: LibvirtConnectionOptions, timeoutMs = 10_000): Promise<LibvirtConnection> {
    const conn = new LibvirtConnection(opts);
    try {
      await conn.ready(timeoutMs);
    } catch (err) {
      await conn.close();
      throw err;
    }
    return conn;
  }

  get state(): ConnectionState {
    return this.stateSubject.value;
  }

  /** How many handshakes have succeeded (1 after the first connect, 2 after one reconnect, …). */
  get connectCount(): number {
    return this.connects;
  }

  /** Calls in flight on the current transport, and the most there have been at once on it. */
  get pendingCalls(): number {
    return this.ch.transport?.pendingCalls ?? 0;
  }
  get peakPendingCalls(): number {
    return this.ch.transport?.peakPendingCalls ?? 0;
  }

  /** Keepalive counters of the current transport (undefined while disconnected). */
  get keepaliveStats(): KeepaliveStats | undefined {
    return this.ch.transport?.keepaliveStats;
  }

  /** Resolves once connected; rejects with LibvirtConnectionError on close or after timeoutMs. */
  ready(timeoutMs = 10_000): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let sub: Subscription | undefined;
      const timer = setTimeout(() => {
        sub?.unsubscribe();
        reject(new LibvirtConnectionError(`not connected to ${describeTarget(this.opts.target)} within ${timeoutMs} ms`, { cause: this.lastError }));
      }, timeoutMs);
      sub = this.stateSubject.subscribe((s) => {
        if (s === 'connected') {
          clearTimeout(timer);
          queueMicrotask(() => sub?.unsubscribe());
          resolve();
        } else if (s === 'closed') {
          clearTimeout(timer);
          queueMicrotask(() => sub?.unsubscribe());
          reject(new LibvirtConnectionError('connection closed', { cause: this.lastError }));
        }
      });
    });
  }

  /** Sends CONNECT_CLOSE (best effort), drops the socket and stops reconnecting. */
  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      this.wake?.();
      const t = this.current;
      if (t?.isOpen) {
        if (this.ch.transport === t) await this.connectClose({ timeoutMs: 2000 }).catch(() => undefined);
        await t.close();
      }
    }
    await this.finished;
  }

  private setState(s: ConnectionState): void {
    if (this.stateSubject.value !== s) this.stateSubject.next(s);
  }

  private async run(): Promise<void> {
    const initial = this.opts.reconnect?.initialDelayMs ?? 100;
    const max = this.opts.reconnect?.maxDelayMs ?? 5000;
    let delay = initial;
    while (!this.closing) {
      this.setState('connecting');
      let t: Transport | undefined;
      let forward: Subscription | undefined;
      try {
        t = await Transport.connect(this.opts.target, this.opts);
        this.current = t;
        if (this.closing) break;
        // Subscribe before the handshake so no event that follows the register reply is missed.
        forward = t.events$.subscribe((e) => this.ch.events.next(e));
        await this.handshake(t);
      } catch (err) {
        this.lastError = err;
        forward?.unsubscribe();
        t?.destroy();
        if (this.closing) break;
        this.setState('disconnected');
        await this.sleep(delay * (0.5 + Math.random() * 0.5));
        delay = Math.min(delay * 2, max);
        continue;
      }
      if (this.closing) break;
      delay = initial;
      this.connects++;
      this.ch.transport = t;
      this.setState('connected');
      this.lastError = await t.closed;
      this.ch.transport = undefined;
      forward?.unsubscribe();
      if (this.closing) break;
      this.setState('disconnected');
      await this.sleep(delay * (0.5 + Math.random() * 0.5));
    }
    this.ch.transport = undefined;
    this.current?.destroy();
    this.setState('closed');
    this.stateSubject.complete();
    this.ch.events.complete();
  }

  private async handshake(t: Transport): Promise<void> {
    const c = new LibvirtClient(t, { defaultTimeoutMs: this.opts.handshakeTimeoutMs ?? 10_000 });
    await c.connectOpen(this.opts.uri, this.opts.openFlags ?? 0);
    const ka = this.opts.keepalive ?? { intervalMs: 5000, count: 5 };
    if (ka !== false && (await c.connectSupportsFeature(DrvFeature.PROGRAM_KEEPALIVE))) t.startKeepalive(ka);
    if (this.opts.lifecycleEvents ?? true) await c.connectDomainEventCallbackRegisterAny(DomainEventId.LIFECYCLE, null);
  }

  private sleep(ms: number): Promise<void> {
    if (this.closing) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
