using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using PipeTransport.HandOff;

namespace PipeTransport.Kestrel;

/// <summary>
/// One server's side of zero-downtime restarts (<see cref="PipeTransportOptions.HandOff"/>). At the first
/// bind it asks a running predecessor for its listeners; once the application has started it commits
/// (the predecessor stops accepting and drains) and serves its own hand-off socket offering every
/// listener it has; when a successor commits in turn, it stops the application, whose graceful stop
/// drains the requests in flight.
/// </summary>
internal sealed class HandOffCoordinator : IAsyncDisposable
{
    private readonly HandOffOptions _options;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly List<(string Name, FdListener Listener)> _listeners = [];
    private readonly List<string> _adopted = [];
    private readonly CancellationTokenSource _disposing = new();
    private Task<HandOffTakeover?>? _takeover;
    private HandOffServer? _server;
    private Task _started = Task.CompletedTask;
    private int _handedOff;
    private bool _disposed;

    public HandOffCoordinator(HandOffOptions options, IHostApplicationLifetime lifetime, ILogger logger)
    {
        _options = options;
        _lifetime = lifetime;
        _logger = logger;
        lifetime.ApplicationStarted.Register(() => Volatile.Write(ref _started, Task.Run(OnStartedAsync)));
    }

    /// <summary>True once a successor committed: what this server listened on is the successor's now.</summary>
    public bool HandedOff => Volatile.Read(ref _handedOff) != 0;

    /// <summary>
    /// The hand-off name of an endpoint: what a successor with the same configuration asks for. Null for
    /// endpoints that are not handed off (an inherited fd belongs to whoever passed it).
    /// </summary>
    public static string? NameOf(EndPoint endpoint) => endpoint switch
    {
        IPEndPoint ip => $"tcp:{ip}",
        UnixDomainSocketEndPoint unix => "unix:" + FullPath(unix.ToString()),
        FifoEndPoint fifo => $"fifo:{Path.GetFullPath(fifo.ReadPath)}|{Path.GetFullPath(fifo.WritePath)}",
        _ => null,
    };

    // An abstract socket (@name) has no file and no directory to resolve against.
    private static string FullPath(string path) => path.Length > 0 && path[0] is '@' or '\0' ? path : Path.GetFullPath(path);

    /// <summary>
    /// The predecessor's offer, asked for once (at the first bind): null on a first start, and also when
    /// the hand-off failed (the predecessor went away mid-way): then every endpoint is bound anew.
    /// </summary>
    public Task<HandOffTakeover?> GetTakeoverAsync()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_takeover is null)
            {
                // A missing directory is a configuration error: the start fails, naming the path.
                _options.Validate();
                _takeover = TakeOverAsync();
            }
            return _takeover;
        }
    }

    private async Task<HandOffTakeover?> TakeOverAsync()
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_disposing.Token);
            timeout.CancelAfter(_options.Timeout);
            return await HandOffClient.TakeOverAsync(_options.Path, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is PipeTransportException or OperationCanceledException or IOException)
        {
            PipeTransportLog.HandOffFailed(_logger, _options.Path, "the previous instance did not offer its listeners; binding them anew", e);
            return null;
        }
    }

    /// <summary>Adopts the predecessor's listener for <paramref name="name"/>, or null when it offered none.</summary>
    public async Task<FdListener?> TryAdoptAsync(string name, FdListenerOptions options)
    {
        HandOffTakeover? takeover = await GetTakeoverAsync().ConfigureAwait(false);
        FdListener? listener = takeover?.TakeListener(name, options);
        if (listener is not null)
        {
            lock (_lock)
            {
                _adopted.Add(name);
            }
        }
        return listener;
    }

    /// <summary>
    /// Completes when FIFO endpoints may be opened: at once on a first start, else when the predecessor
    /// has exited (it finishes the conversation it has; two readers of one FIFO would split its bytes).
    /// </summary>
    public async Task WaitForFifosAsync(CancellationToken cancellationToken)
    {
        HandOffTakeover? takeover = await GetTakeoverAsync().ConfigureAwait(false);
        if (takeover is not null)
        {
            await takeover.PredecessorExited.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Remembers a listener of this server, offered to the successor once the application has started.</summary>
    public void Add(string name, FdListener listener)
    {
        lock (_lock)
        {
            _listeners.Add((name, listener));
        }
    }

    private async Task OnStartedAsync()
    {
        try
        {
            if (!await CommitAsync().ConfigureAwait(false))
            {
                // The predecessor serves on: this instance stops rather than serve next to it.
                _lifetime.StopApplication();
                return;
            }
            await ServeAsync().ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_disposing.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Lets the predecessor go: it stops accepting on the sockets we share and drains. False when it
    /// refused the commit (it dropped this hand-off, e.g. after its timeout, and serves on) or did not
    /// answer in time; true on a first start, on its answer, and when it is gone (the sockets are ours).
    /// </summary>
    private async Task<bool> CommitAsync()
    {
        Task<HandOffTakeover?>? pending;
        lock (_lock)
        {
            pending = _takeover;
        }
        if (pending is null || await pending.ConfigureAwait(false) is not { } takeover)
        {
            return true;
        }
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_disposing.Token);
            timeout.CancelAfter(_options.Timeout);
            await takeover.CommitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is PipeTransportException or IOException || (e is OperationCanceledException && !_disposing.IsCancellationRequested))
        {
            PipeTransportLog.HandOffFailed(_logger, _options.Path, "the previous instance did not let go and serves on; stopping this instance", e);
            return false;
        }
        string[] adopted;
        lock (_lock)
        {
            adopted = [.. _adopted];
        }
        PipeTransportLog.HandOffTaken(_logger, _options.Path, adopted);
        return true;
    }

    /// <summary>Serves this server's own hand-off socket; when a successor commits, stops the application.</summary>
    private async Task ServeAsync()
    {
        HandOffServer server;
        string[] names;
        try
        {
            server = HandOffServer.Start(_options.Path, new HandOffServerOptions
            {
                Timeout = _options.Timeout,
                Events = e => PipeTransportLog.HandOffEvent(_logger, _options.Path, e),
            });
        }
        catch (Exception e) when (e is PipeTransportException or IOException or UnauthorizedAccessException)
        {
            PipeTransportLog.HandOffServeFailed(_logger, _options.Path, e);
            return;
        }
        try
        {
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                foreach (var (name, listener) in _listeners)
                {
                    server.Offer(name, listener);
                }
                names = [.. _listeners.Select(l => l.Name)];
                _server = server;
            }
        }
        catch (Exception e) when (e is ArgumentException or ObjectDisposedException or InvalidOperationException)
        {
            // Stopping already, or a listener Kestrel has unbound: nothing to offer.
            await server.DisposeAsync().ConfigureAwait(false);
            if (e is not ObjectDisposedException)
            {
                PipeTransportLog.HandOffServeFailed(_logger, _options.Path, e);
            }
            return;
        }
        PipeTransportLog.HandOffServing(_logger, _options.Path, names);

        HandOffCommitted committed = await server.HandedOff.WaitAsync(_disposing.Token).ConfigureAwait(false);
        Volatile.Write(ref _handedOff, 1);
        PipeTransportLog.HandOffServed(_logger, _options.Path, committed.Successor.ProcessId, committed.Names);
        _lifetime.StopApplication();
    }

    public async ValueTask DisposeAsync()
    {
        HandOffServer? server;
        Task<HandOffTakeover?>? takeover;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            server = _server;
            takeover = _takeover;
        }
        _disposing.Cancel();
        await Volatile.Read(ref _started).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (server is not null)
        {
            await server.DisposeAsync().ConfigureAwait(false);
        }
        // Before a commit this lets the predecessor resume (a start that failed after the first bind).
        if (takeover is not null)
        {
            await ((Task)takeover).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (takeover.IsCompletedSuccessfully && takeover.Result is { } offer)
            {
                await offer.DisposeAsync().ConfigureAwait(false);
            }
        }
        _disposing.Dispose();
    }
}
