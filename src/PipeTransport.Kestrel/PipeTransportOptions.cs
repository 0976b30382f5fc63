using System.IO.Pipelines;

namespace PipeTransport.Kestrel;

/// <summary>
/// Options of the PipeTransport Kestrel transport, set with
/// <c>builder.WebHost.UsePipeTransport(options =&gt; ...)</c>. The connections' own knobs are the
/// core's <see cref="FdConnectionOptions"/> (<see cref="ConnectionOptions"/>); the rest are the server's.
/// </summary>
public sealed class PipeTransportOptions
{
    /// <summary>
    /// Number of epoll reactor threads serving this server's connections, in the server's own
    /// <see cref="ReactorGroup"/>, stopped when the host is disposed. 0 (the default) is <see cref="DefaultReactorCount"/>.
    /// </summary>
    public int ReactorCount { get; set; }

    /// <summary>
    /// The reactors a server gets when <see cref="ReactorCount"/> is 0: one per two processors, at least one.
    /// A reactor only moves bytes and the thread pool runs Kestrel, so the reactors need fewer CPUs than
    /// the application; one per CPU splits the connections into sets that each wait while their reactor's
    /// CPU runs another thread, which lengthens the latency tail under load.
    /// </summary>
    public static int DefaultReactorCount => Math.Max(1, Environment.ProcessorCount / 2);

    /// <summary>
    /// Whether the reactors yield their CPU once before they block in <c>epoll_wait</c> (see
    /// <see cref="ReactorGroup.YieldsBeforeWaiting"/>). Default true, as the shared default group does:
    /// more requests per second under load, but a request can wait while the client's or the app's
    /// threads use their slice. False favours tail latency at low concurrency, for fewer requests per second.
    /// </summary>
    public bool ReactorsYieldBeforeWaiting { get; set; } = true;

    /// <summary>
    /// Who polls the reactors' epoll fds after a wake-up (see <see cref="PipeTransport.ReactorPolling"/>).
    /// <see cref="ReactorPolling.Auto"/> (the default) decides by the processor count, as the shared
    /// default group does.
    /// </summary>
    public ReactorPolling ReactorPolling { get; set; } = ReactorPolling.Auto;

    /// <summary>
    /// Also run the application side (Kestrel's parser and your request handlers) inline on the reactor
    /// thread. Faster for short non-blocking handlers; a handler that blocks stalls every connection of
    /// that reactor. Default false (the application side runs on the thread pool).
    /// </summary>
    public bool UnsafePreferInlineScheduling { get; set; }

    /// <summary>Listen backlog of TCP and Unix sockets. Default 512.</summary>
    public int Backlog { get; set; } = 512;

    /// <summary>
    /// Accepting pauses while it would leave fewer than this many fds free under <c>RLIMIT_NOFILE</c>,
    /// so the runtime can still start threads and your handlers can still open files and connections;
    /// clients wait in the backlog meanwhile (see <see cref="FdListenerOptions.FdHeadroom"/>).
    /// Default <see cref="FdListenerOptions.DefaultFdHeadroom"/>; 0 accepts until the fd table is full.
    /// </summary>
    public int FdHeadroom { get; set; } = FdListenerOptions.DefaultFdHeadroom;

    /// <summary>
    /// Permissions of the Unix socket files and FIFOs this transport creates, applied before any peer
    /// can connect. Default 0600 (owner read and write).
    /// </summary>
    public UnixFileMode UnixSocketFileMode { get; set; } = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>
    /// Owner of the Unix socket files and FIFOs this transport creates: a user name or a numeric uid,
    /// applied before any peer can connect. Null (the default) keeps the process's user. Giving a file
    /// away needs <c>CAP_CHOWN</c> (root).
    /// </summary>
    public string? UnixSocketOwner { get; set; }

    /// <summary>
    /// Group of the Unix socket files and FIFOs this transport creates: a group name or a numeric gid,
    /// applied before any peer can connect; e.g. <c>"www-data"</c> with <see cref="UnixSocketFileMode"/>
    /// 0660 lets an nginx in front connect. Null (the default) keeps the process's group. Without
    /// <c>CAP_CHOWN</c> a process can only choose a group it belongs to. An unknown name fails the start
    /// with a <see cref="PipeTransportException"/> before the file is created.
    /// </summary>
    public string? UnixSocketGroup { get; set; }

    /// <summary>
    /// Zero-downtime restarts: when set, a new instance of the app started with the same hand-off path
    /// takes over this instance's listening sockets (TCP and Unix) and FIFO endpoints, and this instance
    /// then stops (<c>IHostApplicationLifetime.StopApplication</c>) and drains its requests. Null (the
    /// default): no hand-off. See docs/handoff.md.
    /// </summary>
    public HandOffOptions? HandOff { get; set; }

    /// <summary>
    /// The options of every connection this server accepts, used as they are. They start from the core's
    /// defaults with a server's changes: <see cref="FdConnectionOptions.OutputPauseThreshold"/> 64 KiB and
    /// <see cref="FdConnectionOptions.OutputResumeThreshold"/> 32 KiB (many slow readers should not each
    /// hold a megabyte), <see cref="FdConnectionOptions.PoolSendThreshold"/> <see cref="int.MaxValue"/>
    /// (every response flush is written inside Kestrel's flush), and
    /// <see cref="FdConnectionOptions.ApplicationScheduler"/> <see cref="PipeScheduler.Inline"/> (the
    /// transport makes the thread-pool hop itself, unless <see cref="UnsafePreferInlineScheduling"/>).
    /// Their <see cref="FdConnectionOptions.MemoryPool"/> is also Kestrel's <c>IMemoryPoolFeature</c>.
    /// Leave <see cref="FdConnectionOptions.ReactorGroup"/> null to let the reactor settings above decide
    /// (the server then uses a copy of these options on its own group); a group set here is used
    /// instead, and those settings do not apply.
    /// </summary>
    public FdConnectionOptions ConnectionOptions { get; } = new()
    {
        OutputPauseThreshold = 64 * 1024,
        OutputResumeThreshold = 32 * 1024,
        PoolSendThreshold = int.MaxValue,
        ApplicationScheduler = PipeScheduler.Inline,
    };
}
