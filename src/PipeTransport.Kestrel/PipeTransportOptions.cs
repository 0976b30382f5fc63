using System.IO.Pipelines;

namespace PipeTransport.Kestrel;

/// <summary>
/// Options of the PipeTransport Kestrel transport, set with
/// <c>builder.WebHost.UsePipeTransport(options =&gt; ...)</c>. Defaults match Kestrel's Sockets transport
/// where both have the same knob.
/// </summary>
public sealed class PipeTransportOptions
{
    /// <summary>
    /// Number of epoll reactor threads serving this server's connections. 0 (the default) shares the
    /// process-wide <see cref="ReactorGroup.Default"/> (one reactor per processor); a positive count gives
    /// the server its own <see cref="ReactorGroup"/>, stopped when the host is disposed.
    /// </summary>
    public int ReactorCount { get; set; }

    /// <summary>
    /// Whether the reactors yield their CPU once before they block in <c>epoll_wait</c> (see
    /// <see cref="ReactorGroup.YieldsBeforeWaiting"/>). Default true: more requests per second under
    /// load, but a request can wait while the client's or the app's threads use their slice. Measured
    /// with <c>wrk</c>, 13-byte responses, 32 connections: 124k requests/s at p99 2.25 ms with it,
    /// 87k at p99 0.92 ms without, 75k at p99 1.25 ms on the Sockets transport (with 64 KiB responses
    /// the yield cost no tail latency). False favours tail latency; it gives the server its own
    /// <see cref="ReactorGroup"/> (<see cref="ReactorCount"/> reactors, or one per processor when that
    /// is 0), as the shared default group yields.
    /// </summary>
    public bool ReactorsYieldBeforeWaiting { get; set; } = true;

    /// <summary>
    /// Who polls the reactors' epoll fds after a wake-up (see <see cref="PipeTransport.ReactorPolling"/>).
    /// <see cref="ReactorPolling.Auto"/> (the default) hands the polling to the thread pool when the
    /// process has one CPU and keeps it on the reactor threads otherwise, as the shared default group
    /// does; any other value gives the server its own <see cref="ReactorGroup"/>.
    /// </summary>
    public ReactorPolling ReactorPolling { get; set; } = ReactorPolling.Auto;

    /// <summary>
    /// Bytes of received, not yet parsed data at which a connection stops reading from its fd
    /// (Kestrel's <c>MaxRequestBufferSize</c> counterpart). Default 1 MiB.
    /// </summary>
    public long InputPauseThreshold { get; set; } = 1024 * 1024;

    /// <summary>Bytes below which a paused connection reads again. Default 512 KiB.</summary>
    public long InputResumeThreshold { get; set; } = 512 * 1024;

    /// <summary>
    /// Bytes of response data not yet written to the fd at which the application's flushes wait
    /// (backpressure to the app). Default 64 KiB.
    /// </summary>
    public long OutputPauseThreshold { get; set; } = 64 * 1024;

    /// <summary>Bytes below which a waiting application flush completes. Default 32 KiB.</summary>
    public long OutputResumeThreshold { get; set; } = 32 * 1024;

    /// <summary>
    /// Run the transport side of each connection's pipes inline on the reactor thread (no thread-pool
    /// hop per read or write). Default true.
    /// </summary>
    public bool InlineTransportScheduling { get; set; } = true;

    /// <summary>
    /// Also run the application side (Kestrel's parser and your request handlers) inline on the reactor
    /// thread. Faster for short non-blocking handlers; a handler that blocks stalls every connection of
    /// that reactor. Default false (the application side runs on the thread pool).
    /// </summary>
    public bool UnsafePreferInlineScheduling { get; set; }

    /// <summary>
    /// With <see cref="InlineTransportScheduling"/>, a response flush of at least this many bytes is
    /// written to the socket from a thread-pool thread instead of inside Kestrel's flush (see
    /// <see cref="FdConnectionOptions.PoolSendThreshold"/>). Default <see cref="int.MaxValue"/>: every
    /// flush is written inline, the transport's behaviour measured best under wrk.
    /// </summary>
    public int PoolSendThreshold { get; set; } = int.MaxValue;

    /// <summary>Listen backlog of TCP and Unix sockets. Default 512.</summary>
    public int Backlog { get; set; } = 512;

    /// <summary>
    /// Permissions of the Unix socket files and FIFOs this transport creates, applied before any peer
    /// can connect. Default 0600 (owner read and write).
    /// </summary>
    public UnixFileMode UnixSocketFileMode { get; set; } = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Block size of the receive buffers in bytes, 0 for the core's default.</summary>
    public int BufferSize { get; set; }

    /// <summary>Set <c>TCP_NODELAY</c> on accepted TCP connections. Default true.</summary>
    public bool NoDelay { get; set; } = true;

    internal FdConnectionOptions CreateConnectionOptions(ReactorGroup? reactorGroup)
    {
        var options = new FdConnectionOptions
        {
            InputPauseThreshold = InputPauseThreshold,
            InputResumeThreshold = InputResumeThreshold,
            OutputPauseThreshold = OutputPauseThreshold,
            OutputResumeThreshold = OutputResumeThreshold,
            InlineTransportScheduling = InlineTransportScheduling,
            // Inline in either case: the pipes complete Kestrel's side inline and TransportInput/TransportOutput
            // make the thread-pool hop themselves (unless UnsafePreferInlineScheduling), without allocating.
            ApplicationScheduler = PipeScheduler.Inline,
            NoDelay = NoDelay,
            PoolSendThreshold = PoolSendThreshold,
            ReactorGroup = reactorGroup,
        };
        if (BufferSize > 0)
        {
            options.BufferSize = BufferSize;
        }
        return options;
    }
}
