using PipeTransport.Interop;

namespace PipeTransport.HandOff;

/// <summary>
/// What a predecessor offered (<see cref="HandOffClient.TakeOverAsync"/>). Take the listeners, start
/// serving, then <see cref="CommitAsync"/>; FIFO readers are taken after the commit. Whatever is not
/// taken is closed on dispose.
/// </summary>
public sealed class HandOffTakeover : IAsyncDisposable
{
    private readonly HandOffChannel _channel;
    private readonly Dictionary<string, (HandOffKind Kind, SafeFdHandle[] Fds)> _offered; // under itself; an entry leaves when taken
    private readonly TaskCompletionSource _predecessorExited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _disposing = new();
    private Task? _commit;
    private Task? _watch;
    private bool _committed;
    private int _disposed;

    internal HandOffTakeover(HandOffChannel channel, Dictionary<string, (HandOffKind, SafeFdHandle[])> offered)
    {
        _channel = channel;
        _offered = offered;
        Names = [.. offered.Keys];
    }

    /// <summary>The names of what was offered.</summary>
    public IReadOnlyCollection<string> Names { get; }

    /// <summary>
    /// Adopts the listener offered under <paramref name="name"/>. It accepts at once: the predecessor
    /// accepts from the same sockets until the commit, and the kernel hands each client to one of us.
    /// The adopted listener does not remove a Unix socket file on dispose (a later successor serves it).
    /// </summary>
    /// <param name="name">The offered name.</param>
    /// <param name="options">Options of the adopted listener (only connection options, reactors and fd headroom apply).</param>
    /// <returns>The listener, or null when nothing was offered under that name.</returns>
    /// <exception cref="InvalidOperationException">It was already taken, or the name is a FIFO reader.</exception>
    public FdListener? TakeListener(string name, FdListenerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        SafeFdHandle[]? fds = Take(name, HandOffKind.Listener, requireCommit: false);
        if (fds is null)
        {
            return null;
        }

        try
        {
            return FdListener.Adopt(fds, options, nameof(name));
        }
        catch
        {
            HandOffChannel.Close(fds);
            throw;
        }
    }

    /// <summary>
    /// Tells the predecessor to let go: it stops accepting, ends its FIFO inputs and answers. Completes
    /// when it answered, or when it is gone (it no longer reads either way).
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait (not the commit, once sent).</param>
    /// <returns>A task that completes when FIFO readers are ours.</returns>
    /// <exception cref="PipeTransportException">The commit could not be sent.</exception>
    public Task CommitAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        lock (_offered)
        {
            _commit ??= CommitCoreAsync();
        }

        return _commit.WaitAsync(cancellationToken);
    }

    /// <summary>Adopts the FIFO reader offered under <paramref name="name"/> (with its spare writer); only after <see cref="CommitAsync"/>.</summary>
    /// <param name="name">The offered name.</param>
    /// <param name="options">Connection options.</param>
    /// <returns>The connection (its Input reads the FIFO), or null when nothing was offered under that name.</returns>
    /// <exception cref="InvalidOperationException">Before the commit, already taken, or the name is a listener.</exception>
    public FdConnection? TakeConnection(string name, FdConnectionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        SafeFdHandle[]? fds = Take(name, HandOffKind.FifoReader, requireCommit: true);
        return fds is null ? null : FdConnection.FromFifoReader(fds[0], fds.Length > 1 ? fds[1] : null, options, name);
    }

    /// <summary>Completes when the hand-off socket reached EOF after the commit: the predecessor closed its server or exited.</summary>
    public Task PredecessorExited => _predecessorExited.Task;

    /// <summary>Before the commit the predecessor resumes; every fd not taken is closed.</summary>
    /// <returns>A task that completes when everything is closed.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        Task? commit, watch;
        lock (_offered)
        {
            foreach ((HandOffKind _, SafeFdHandle[] fds) in _offered.Values)
            {
                HandOffChannel.Close(fds);
            }

            _offered.Clear();
            commit = _commit;
            watch = _watch;
        }

        _disposing.Cancel();
        if (commit is not null)
        {
            await commit.ContinueWith(static _ => { }, TaskScheduler.Default).ConfigureAwait(false);
        }

        if (watch is not null)
        {
            await watch.ConfigureAwait(false);
        }

        _channel.Dispose();
        _disposing.Dispose();
    }

    private SafeFdHandle[]? Take(string name, HandOffKind kind, bool requireCommit)
    {
        lock (_offered)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            if (!_offered.TryGetValue(name, out (HandOffKind Kind, SafeFdHandle[] Fds) entry))
            {
                if (Names.Contains(name))
                {
                    throw new InvalidOperationException($"\"{name}\" was already taken.");
                }

                return null;
            }

            if (entry.Kind != kind)
            {
                throw new InvalidOperationException($"\"{name}\" is a {(entry.Kind == HandOffKind.Listener ? "listener" : "FIFO reader")}.");
            }

            if (requireCommit && !_committed)
            {
                throw new InvalidOperationException($"\"{name}\" is a FIFO the predecessor reads until the commit: take it after CommitAsync.");
            }

            _offered.Remove(name);
            return entry.Fds;
        }
    }

    private async Task CommitCoreAsync()
    {
        try
        {
            await _channel.SendAsync(HandOffChannel.Commit, _disposing.Token).ConfigureAwait(false);
        }
        catch (PipeTransportException)
        {
            // The predecessor closed the socket: it died (ours now) or dropped us (its abort is queued).
        }

        HandOffMessage? answer;
        try
        {
            answer = await _channel.ReceiveAsync(_disposing.Token).ConfigureAwait(false);
        }
        catch (PipeTransportException e) when (e.Errno != Mono.Unix.Native.Errno.EPROTO)
        {
            answer = null; // reset: the predecessor is gone, it reads nothing any more
        }

        if (answer is { Type: HandOffChannel.Abort } abort)
        {
            HandOffChannel.Close(abort.Fds);
            throw _channel.Aborted();
        }

        bool exited = answer is null;
        if (answer is { } done)
        {
            HandOffChannel.Close(done.Fds);
            if (done.Type != HandOffChannel.Done)
            {
                throw _channel.Malformed($"message type {done.Type} where the commit's answer was expected");
            }
        }

        lock (_offered)
        {
            _committed = true;
            _watch = exited ? null : WatchPredecessorAsync();
        }

        if (exited)
        {
            _predecessorExited.TrySetResult();
        }
    }

    /// <summary>After the commit nothing more comes: the next thing the socket says is EOF (the predecessor closed it or exited).</summary>
    private async Task WatchPredecessorAsync()
    {
        try
        {
            while (await _channel.ReceiveAsync(_disposing.Token).ConfigureAwait(false) is { } unexpected)
            {
                HandOffChannel.Close(unexpected.Fds);
            }
        }
        catch (OperationCanceledException)
        {
            return; // disposed: PredecessorExited stays pending
        }
        catch (Exception)
        {
            // A reset is an exit too.
        }

        _predecessorExited.TrySetResult();
    }
}
