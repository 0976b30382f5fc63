using System.Runtime.InteropServices;
using PipeTransport.Connection;
using PipeTransport.Endpoints;
using PipeTransport.Interop;

namespace PipeTransport.HandOff;

/// <summary>
/// Offers this process's listeners and FIFO read ends to a successor process of the same user
/// through a <c>SOCK_SEQPACKET</c> Unix socket. The successor adopts them, commits, and this process
/// then stops accepting, ends its FIFO inputs where it stopped reading, and completes
/// <see cref="HandedOff"/>: the application drains what it has and exits. Until the commit nothing
/// changes here, so a successor that fails or dies leaves this process serving.
/// </summary>
public sealed class HandOffServer : IAsyncDisposable
{
    private const int Backlog = 8;

    private readonly string _path;
    private readonly ulong _inode;
    private readonly HandOffServerOptions _options;
    private readonly FdChannel _listen;
    private readonly List<Offered> _offers = [];
    private readonly TaskCompletionSource<HandOffCommitted> _handedOff = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private HandOffChannel? _successor; // after the commit: open until disposal, its EOF tells the successor we are gone
    private int _disposed;

    private HandOffServer(string path, ulong inode, FdChannel listen, HandOffServerOptions options)
    {
        _path = path;
        _inode = inode;
        _listen = listen;
        _options = options;
        _loop = Task.Run(ServeAsync);
    }

    /// <summary>
    /// Binds the hand-off socket at <paramref name="path"/> (under a temporary name in the same
    /// directory, mode 0600, then renamed over <paramref name="path"/>, so a successor's server
    /// replaces ours atomically) and serves one successor at a time.
    /// </summary>
    /// <param name="path">The socket's path.</param>
    /// <param name="options">Options.</param>
    /// <returns>The server.</returns>
    /// <exception cref="PipeTransportException"><c>ENOENT</c> (missing directory), <c>EACCES</c>, <c>ENAMETOOLONG</c>, ... naming the path.</exception>
    public static HandOffServer Start(string path, HandOffServerOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= new HandOffServerOptions();
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.Timeout, TimeSpan.Zero, nameof(options.Timeout));
        if (path[0] is '@' or '\0')
        {
            throw new ArgumentException("A hand-off socket needs a file path (its mode and owner are its access control), not an abstract name.", nameof(path));
        }

        _ = SocketAddresses.UnixToNative(path); // ENAMETOOLONG names the path itself
        string directory = Path.GetDirectoryName(Path.GetFullPath(path)) ?? "/";
        string temporary = Path.Combine(directory, $".ho{Environment.ProcessId:x}.{Random.Shared.Next():x}");
        if (System.Text.Encoding.UTF8.GetByteCount(temporary) > SocketAddresses.MaxUnixPathBytes)
        {
            throw new PipeTransportException(Mono.Unix.Native.Errno.ENAMETOOLONG, "bind", path,
                $"the temporary name the socket is bound to first ({temporary}) is longer than {SocketAddresses.MaxUnixPathBytes} bytes: use a shorter directory");
        }

        byte[] address = SocketAddresses.UnixToNative(temporary);

        int fd = Sys.SeqPacketSocket();
        if (fd < 0)
        {
            throw PipeTransportException.FromResult(fd, "socket", path);
        }

        var handle = new SafeFdHandle(fd);
        bool bound = false;
        try
        {
            int r = Sys.Bind(fd, address);
            if (r < 0)
            {
                throw PipeTransportException.FromResult(r, "bind", path);
            }

            bound = true;
            // Nobody can connect before listen(): the mode is 0600 by then, whatever the umask.
            if ((r = Sys.Chmod(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite)) < 0
                || (r = Sys.Listen(fd, Backlog)) < 0 || (r = Sys.Rename(temporary, path)) < 0)
            {
                throw PipeTransportException.FromResult(r, "bind", path);
            }

            bound = false;
            Sys.Stat(path, followLinks: false, out _, out ulong inode);
            FdChannel listen = FdChannel.AdoptNew(handle, FdKind.Socket, ReactorGroup.Default.Next(), path);
            return new HandOffServer(path, inode, listen, options);
        }
        catch
        {
            if (bound)
            {
                Sys.Unlink(temporary);
            }

            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Offers every socket of <paramref name="listener"/> (all of an <c>SO_REUSEPORT</c> group) under
    /// <paramref name="name"/>. After a commit the listener stops accepting (a pending accept returns
    /// null) and its disposal leaves the Unix socket file to the successor.
    /// </summary>
    /// <param name="name">The name the successor asks for.</param>
    /// <param name="listener">The listener.</param>
    /// <exception cref="ArgumentException">The name is already offered, empty, or longer than 255 bytes.</exception>
    public void Offer(string name, FdListener listener)
    {
        ArgumentNullException.ThrowIfNull(listener);
        Add(new Offered(name, listener, null, null));
    }

    /// <summary>
    /// Offers the read end of a FIFO: Input of <paramref name="fifoReader"/> (its Output is not offered).
    /// During a hand-off the connection stops reading (a read in flight finishes first); after a commit
    /// its Input ends where it stopped (the application reads what was read, then the end), otherwise
    /// it reads on. Input must be read through the connection's pipe (not its raw fd, nor copied by splice).
    /// </summary>
    /// <param name="name">The name the successor asks for.</param>
    /// <param name="fifoReader">The connection whose Input reads the FIFO.</param>
    /// <param name="spareWriter">A write end of the same FIFO that keeps the reader from seeing EOF between writers; default the one the connection holds (<see cref="FdConnectionOptions.KeepFifoReaderOpen"/>). Stays the caller's.</param>
    /// <exception cref="ArgumentException">The name is already offered, empty, or longer than 255 bytes; Input does not read a FIFO or pipe.</exception>
    public void Offer(string name, FdConnection fifoReader, SafeHandle? spareWriter = null)
    {
        ArgumentNullException.ThrowIfNull(fifoReader);
        if (fifoReader.InputChannel.Kind != FdKind.Pipe)
        {
            throw new ArgumentException($"{fifoReader.InputChannel.Name} is not a FIFO or pipe: only FIFO readers are offered this way.", nameof(fifoReader));
        }

        Add(new Offered(name, null, fifoReader, spareWriter ?? fifoReader.SpareWriter));
    }

    /// <summary>
    /// Completes when a successor committed: the caller then drains and exits. Never faults; stays
    /// pending if the server is disposed first.
    /// </summary>
    public Task<HandOffCommitted> HandedOff => _handedOff.Task;

    /// <summary>
    /// Stops serving (a hand-off in progress is aborted: FIFO inputs resume) and removes the socket
    /// file if it is still ours (same inode: a successor's server may have replaced it) and nothing
    /// was handed off (after a commit the path is the successor's).
    /// </summary>
    /// <returns>A task that completes when the server is closed.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _stop.Cancel();
        _listen.Unregister(new ObjectDisposedException(nameof(HandOffServer)));
        await _loop.ConfigureAwait(false);

        // After a commit the path is the successor's (its server replaces ours at any moment). Else
        // it is removed if it is still our file, asked while our socket is open: until then its
        // inode number cannot be given to another file.
        bool ours = !_handedOff.Task.IsCompleted && Sys.Stat(_path, followLinks: false, out _, out ulong inode) == 0 && inode == _inode;
        _listen.Close();
        lock (_offers)
        {
            _successor?.Dispose();
        }

        if (ours)
        {
            Sys.Unlink(_path);
        }

        _stop.Dispose();
    }

    private void Add(Offered offer)
    {
        HandOffChannel.CheckName(offer.Name);
        lock (_offers)
        {
            if (_offers.Exists(o => o.Name == offer.Name))
            {
                throw new ArgumentException($"\"{offer.Name}\" is already offered.", "name");
            }

            _offers.Add(offer);
        }
    }

    /// <summary>One successor at a time, until one commits or the server is disposed.</summary>
    private async Task ServeAsync()
    {
        CancellationToken stop = _stop.Token;
        while (!stop.IsCancellationRequested)
        {
            int fd = _listen.WithFd(0, static (_, listenFd) => Sys.Accept(listenFd));
            if (fd == -Libc.EAGAIN || fd == -Libc.ECONNABORTED || fd == -Libc.EINTR)
            {
                try
                {
                    await _listen.Registration!.Read.WaitAsync(true, stop).ConfigureAwait(false);
                }
                catch (Exception) when (stop.IsCancellationRequested)
                {
                    return;
                }

                continue;
            }

            if (fd < 0)
            {
                if (stop.IsCancellationRequested)
                {
                    return;
                }

                // Out of fds, most likely: the next successor may find some free.
                Report(HandOffEventKind.Aborted, null, $"accept on {_path} failed", PipeTransportException.FromResult(fd, "accept4", _path));
                await Task.Delay(100, stop).ContinueWith(static _ => { }, TaskScheduler.Default).ConfigureAwait(false);
                continue;
            }

            HandOffChannel session;
            try
            {
                session = HandOffChannel.Adopt(fd, _path);
            }
            catch (PipeTransportException e)
            {
                Report(HandOffEventKind.Aborted, null, "the successor's connection could not be registered", e);
                continue;
            }

            if (await ServeOneAsync(session, stop).ConfigureAwait(false))
            {
                lock (_offers)
                {
                    if (Volatile.Read(ref _disposed) != 0 && _stop.IsCancellationRequested)
                    {
                        session.Dispose();
                    }
                    else
                    {
                        _successor = session;
                    }
                }

                return; // handed off: there is nothing left to offer
            }

            session.Dispose();
        }
    }

    /// <summary>One successor: true once it committed. Any failure before that leaves everything as it was.</summary>
    private async Task<bool> ServeOneAsync(HandOffChannel session, CancellationToken stop)
    {
        PeerCredentials peer;
        try
        {
            peer = session.Peer();
        }
        catch (PipeTransportException e)
        {
            Report(HandOffEventKind.Aborted, null, "the successor's credentials could not be read", e);
            return false;
        }

        uint ours = Sys.EffectiveUserId();
        if (peer.UserId != ours)
        {
            Report(HandOffEventKind.Refused, peer, $"refused uid {peer.UserId} (pid {peer.ProcessId}): only uid {ours} may take over", null);
            return false;
        }

        Offered[] offers;
        lock (_offers)
        {
            offers = [.. _offers];
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
        timeout.CancelAfter(_options.Timeout);
        CancellationToken cancellation = timeout.Token;
        var paused = new List<FdConnection>();
        var fds = new List<SafeFdHandle>();
        try
        {
            HandOffMessage hello = await session.ExpectAsync(HandOffChannel.Hello, "its hello", cancellation).ConfigureAwait(false);
            HandOffChannel.Close(hello.Fds);

            // FIFO readers stop reading before their fds leave: from here until the commit or the
            // failure, whatever is written stays in the FIFO.
            foreach (Offered offer in offers)
            {
                if (offer.Fifo is { } fifo)
                {
                    Task reached = fifo.PauseInputAsync();
                    paused.Add(fifo);
                    await reached.WaitAsync(cancellation).ConfigureAwait(false);
                }
            }

            var entries = new List<HandOffEntry>(offers.Length);
            foreach (Offered offer in offers)
            {
                int before = fds.Count;
                if (offer.Listener is { } listener)
                {
                    fds.AddRange(listener.DuplicateSockets());
                }
                else
                {
                    fds.Add(Duplicate(offer.Fifo!.DuplicateInputFd(), offer.Name));
                    if (offer.Spare is { } spare)
                    {
                        fds.Add(Duplicate(DuplicateHandle(spare), offer.Name));
                    }
                }

                entries.Add(new HandOffEntry(offer.Name, offer.Listener is null ? HandOffKind.FifoReader : HandOffKind.Listener, fds.Count - before));
            }

            await session.SendAsync(HandOffChannel.EncodeOffer(entries), [], cancellation).ConfigureAwait(false);
            for (int i = 0; i < fds.Count; i += HandOffChannel.MaxFdsPerMessage)
            {
                SafeFdHandle[] chunk = fds.GetRange(i, Math.Min(HandOffChannel.MaxFdsPerMessage, fds.Count - i)).ToArray();
                await session.SendAsync([HandOffChannel.Fds, HandOffChannel.Version], chunk, cancellation).ConfigureAwait(false);
            }

            HandOffChannel.Close(fds); // the successor has its own now
            fds.Clear();
            HandOffMessage commit = await session.ExpectAsync(HandOffChannel.Commit, "its commit", cancellation).ConfigureAwait(false);
            HandOffChannel.Close(commit.Fds);
        }
        catch (Exception e)
        {
            // The successor must not take over after all: a commit it sends now is answered with this.
            session.TrySend(HandOffChannel.Abort);
            HandOffChannel.Close(fds);
            foreach (FdConnection fifo in paused)
            {
                fifo.ResumeInput();
            }

            string why = stop.IsCancellationRequested ? "the server was disposed"
                : cancellation.IsCancellationRequested ? $"the successor did not commit within {_options.Timeout}"
                : "the successor failed before it committed";
            Report(HandOffEventKind.Aborted, peer, $"hand-off to pid {peer.ProcessId} aborted: {why}; still serving", e);
            return false;
        }

        // Committed: the successor serves from now on. Our listeners stop accepting (their backlog is
        // the successor's), our FIFO inputs end where reading stopped.
        foreach (Offered offer in offers)
        {
            if (offer.Listener is { } listener)
            {
                await listener.HandOverAsync().ConfigureAwait(false);
            }
            else
            {
                offer.Fifo!.EndInputAtPause();
            }
        }

        try
        {
            await session.SendAsync(HandOffChannel.Done, CancellationToken.None).ConfigureAwait(false);
        }
        catch (PipeTransportException)
        {
            // The successor went away after its commit: it took everything, and its EOF says as much.
        }

        string[] names = Array.ConvertAll(offers, o => o.Name);
        Report(HandOffEventKind.Committed, peer, $"handed off to pid {peer.ProcessId}: {string.Join(", ", names)}", null);
        _handedOff.TrySetResult(new HandOffCommitted(peer, names));
        return true;
    }

    private static SafeFdHandle Duplicate(int fd, string name) =>
        fd >= 0 ? new SafeFdHandle(fd) : throw PipeTransportException.FromResult(fd, "fcntl(F_DUPFD_CLOEXEC)", name);

    private static int DuplicateHandle(SafeHandle handle)
    {
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return Sys.DuplicateCloseOnExec((int)handle.DangerousGetHandle());
        }
        catch (ObjectDisposedException)
        {
            return -Libc.EBADF;
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    private void Report(HandOffEventKind kind, PeerCredentials? peer, string detail, Exception? error)
    {
        try
        {
            _options.Events?.Invoke(new HandOffEvent(kind, peer, detail, error));
        }
        catch
        {
            // The callback must not throw; if it does, serving goes on.
        }
    }

    private sealed record Offered(string Name, FdListener? Listener, FdConnection? Fifo, SafeHandle? Spare);
}
