using System.Diagnostics;
using System.Net;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Mono.Unix.Native;
using PipeTransport.Connection;
using PipeTransport.Diagnostics;
using PipeTransport.Endpoints;
using PipeTransport.Interop;

namespace PipeTransport;

/// <summary>
/// A listening stream socket (TCP or Unix domain) on the reactor: <c>accept4(SOCK_NONBLOCK|SOCK_CLOEXEC)</c>
/// when the socket is readable, taking every pending connection before waiting again. At the fd
/// limit it pauses and waits, with the clients in the backlog, until fds are free again.
/// </summary>
public sealed class FdListener : IAsyncDisposable
{
    /// <summary>Marks an accept not tried because too few fds are free (<see cref="FdListenerOptions.FdHeadroom"/>).</summary>
    private const int NoHeadroom = int.MinValue;

    /// <summary>The first wait before trying again at the fd limit; it doubles up to <see cref="MaxRetryDelay"/>.</summary>
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(1);

    /// <summary>
    /// The longest wait at the fd limit: an fd that someone else frees is seen within it. An fd this
    /// library closes ends the wait at once. Each wait costs a timer, a thread-pool wake-up and at
    /// most one count of the open fds, so waiting stays far below 1% of a core.
    /// </summary>
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromMilliseconds(100);

    private readonly FdChannel[] _sockets;
    private readonly FdConnectionOptions _connectionOptions;
    private readonly ReactorGroup _reactors;
    private readonly string _name;
    private readonly string? _unixPath;
    private readonly ulong _unixInode;
    private readonly Channel<FdConnection>? _accepted;
    private readonly Task[]? _acceptLoops;
    private readonly CancellationTokenSource _disposing = new();
    private readonly int _headroom;
    private readonly Action<FdListenerEvent>? _events;
    private int _atFdLimit; // 1 from the first accept that holds back until one that leaves headroom (one stay, however many loops)
    private long _atFdLimitSince;
    private int _disposed;
    private int _handedOff; // 1: a successor serves the sockets; the Unix socket file is its

    /// <summary>
    /// The first timer starts the runtime's timer thread, and a thread started at the fd limit aborts
    /// the process: start it with the first listener, while fds are free, for the waits at the limit.
    /// </summary>
    static FdListener() => _ = Task.Delay(1);

    private FdListener(FdChannel[] sockets, EndPoint localEndPoint, FdListenerOptions options, string name, string? unixPath, ulong unixInode)
    {
        _sockets = sockets;
        LocalEndPoint = localEndPoint;
        _connectionOptions = options.ConnectionOptions ?? FdConnectionOptions.Default;
        _connectionOptions.Validate();
        _reactors = options.ReactorGroup ?? _connectionOptions.Reactors;
        _name = name;
        _unixPath = unixPath;
        _unixInode = unixInode;
        _headroom = options.FdHeadroom;
        _events = options.Events;
        if (sockets.Length > 1)
        {
            // SO_REUSEPORT: the kernel spreads connections over the sockets; one accept loop each.
            _accepted = Channel.CreateUnbounded<FdConnection>(new UnboundedChannelOptions { SingleWriter = false, SingleReader = false });
            _acceptLoops = Array.ConvertAll(sockets, s => AcceptLoopAsync(s, _disposing.Token));
        }
    }

    /// <summary>The bound address (with the real port when port 0 was asked for).</summary>
    public EndPoint LocalEndPoint { get; }

    /// <summary>
    /// Binds and listens. A Unix socket file gets <see cref="FdListenerOptions.UnixSocketMode"/> (and
    /// <see cref="FdListenerOptions.UnixSocketOwner"/>/<see cref="FdListenerOptions.UnixSocketGroup"/>) before
    /// anyone can connect; a leftover socket file is removed only when nothing listens on it; the file
    /// is removed again on dispose.
    /// </summary>
    /// <param name="endPoint">An <see cref="IPEndPoint"/> (IPv4, IPv6, <c>[::]</c> is dual-stack) or a <see cref="System.Net.Sockets.UnixDomainSocketEndPoint"/> (a path or an abstract <c>@name</c>).</param>
    /// <param name="options">Options.</param>
    /// <returns>The listener.</returns>
    /// <exception cref="PipeTransportException"><c>EADDRINUSE</c>, <c>EACCES</c>, <c>ENAMETOOLONG</c>, ... naming the endpoint.</exception>
    public static FdListener Bind(EndPoint endPoint, FdListenerOptions? options = null)
    {
        options ??= new FdListenerOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Backlog, 1, nameof(options.Backlog));
        ArgumentOutOfRangeException.ThrowIfNegative(options.FdHeadroom, nameof(options.FdHeadroom));
        byte[] address = SocketAddresses.ToNative(endPoint, out int family);
        string name = SocketAddresses.Describe(endPoint);
        ReactorGroup reactors = options.ReactorGroup ?? (options.ConnectionOptions ?? FdConnectionOptions.Default).Reactors;
        string? unixPath = family == Libc.AF_UNIX && address[2] != 0 ? endPoint.ToString() : null;
        FileOwnership ownership = FileOwnership.None;
        if (unixPath is not null)
        {
            ownership = FileOwnership.Resolve(options.UnixSocketOwner, options.UnixSocketGroup, unixPath);
            RemoveStaleSocket(unixPath, address, name);
        }

        int count = options.ReusePort && family != Libc.AF_UNIX ? reactors.Count : 1;
        var sockets = new List<FdChannel>(count);
        ulong inode = 0;
        try
        {
            EndPoint? bound = null;
            for (int i = 0; i < count; i++)
            {
                SafeFdHandle handle = BindOne(family, address, name, options, endPoint, unixPath, ownership);
                sockets.Add(FdChannel.AdoptNew(handle, FdKind.Socket, reactors.Next(), name));
                if (bound is null)
                {
                    bound = SocketAddresses.TryName(sockets[0], peer: false) ?? endPoint;
                    if (unixPath is not null)
                    {
                        Sys.Stat(unixPath, followLinks: true, out _, out inode);
                    }

                    // With port 0 the others must join the port the kernel picked.
                    address = SocketAddresses.ToNative(bound, out _);
                }
            }

            return new FdListener(sockets.ToArray(), bound!, options, name, unixPath, inode);
        }
        catch
        {
            foreach (FdChannel s in sockets)
            {
                s.Close();
            }

            if (unixPath is not null && inode != 0)
            {
                Sys.Unlink(unixPath);
            }

            throw;
        }
    }

    /// <summary>
    /// Adopts a listening socket someone else bound (an inherited fd, systemd socket activation).
    /// The listener owns it from now on: it makes the fd non-blocking and close-on-exec (an inherited
    /// fd usually is neither, and a process the app starts must not hold the socket open), and
    /// closes it on dispose. The socket file of a Unix socket stays: whoever bound it removes it.
    /// </summary>
    /// <param name="listeningSocket">A socket that is already listening.</param>
    /// <param name="options">Options (only the connection options and reactors apply).</param>
    /// <returns>The listener.</returns>
    /// <exception cref="ArgumentException">The handle is not an open, listening stream socket.</exception>
    public static FdListener FromHandle(SafeHandle listeningSocket, FdListenerOptions? options = null) =>
        Adopt([listeningSocket], options, nameof(listeningSocket));

    /// <summary>
    /// Adopts listening sockets as one listener (an <c>SO_REUSEPORT</c> group a predecessor handed
    /// off: one accept loop per socket). Owns the handles once adopted; when it throws, a handle it
    /// had not adopted yet is still the caller's.
    /// </summary>
    internal static FdListener Adopt(SafeHandle[] listeningSockets, FdListenerOptions? options, string parameterName)
    {
        options ??= new FdListenerOptions();
        var channels = new List<FdChannel>(listeningSockets.Length);
        try
        {
            ArgumentOutOfRangeException.ThrowIfNegative(options.FdHeadroom, nameof(options.FdHeadroom));
            ReactorGroup reactors = options.ReactorGroup ?? (options.ConnectionOptions ?? FdConnectionOptions.Default).Reactors;
            foreach (SafeHandle socket in listeningSockets)
            {
                FdChannel channel = FdChannel.Adopt(socket, reactors.Next(), disposeHandle: true);
                channels.Add(channel);
                int listening = channel.WithFd(0, static (_, fd) =>
                    Sys.GetSockOptInt(fd, Libc.SOL_SOCKET, Libc.SO_ACCEPTCONN, out int v) < 0 ? -1 : v);
                if (channel.Kind != FdKind.Socket || listening != 1)
                {
                    throw new ArgumentException($"{channel.Name} is not a listening socket.", parameterName);
                }

                int cloexec = channel.WithFd(0, static (_, fd) => Sys.SetCloseOnExec(fd));
                if (cloexec < 0)
                {
                    throw PipeTransportException.FromResult(cloexec, "fcntl(FD_CLOEXEC)", channel.Name);
                }
            }

            EndPoint local = SocketAddresses.TryName(channels[0], peer: false) ?? new IPEndPoint(IPAddress.None, 0);
            return new FdListener(channels.ToArray(), local, options, channels[0].Name, null, 0);
        }
        catch
        {
            foreach (FdChannel channel in channels)
            {
                channel.Close();
            }

            throw;
        }
    }

    /// <summary>How errors and hand-offs name this listener (<c>tcp:127.0.0.1:80</c>, <c>unix:/path</c>, <c>fd N</c>).</summary>
    internal string Name => _name;

    /// <summary>Close-on-exec duplicates of every listening socket, for a successor (the caller closes them).</summary>
    /// <exception cref="PipeTransportException">A <c>dup</c> failed (the ones made are closed).</exception>
    internal SafeFdHandle[] DuplicateSockets()
    {
        var fds = new SafeFdHandle[_sockets.Length];
        for (int i = 0; i < _sockets.Length; i++)
        {
            int fd = _sockets[i].WithFd(0, static (_, listenFd) => Sys.DuplicateCloseOnExec(listenFd));
            if (fd < 0)
            {
                for (int j = 0; j < i; j++)
                {
                    fds[j].Dispose();
                }

                throw PipeTransportException.FromResult(fd, "fcntl(F_DUPFD_CLOEXEC)", _name);
            }

            fds[i] = new SafeFdHandle(fd);
        }

        return fds;
    }

    /// <summary>
    /// A successor took the sockets over: stop accepting (a pending accept returns null) and close
    /// ours; the successor's copies keep the sockets, their backlog and the Unix socket file.
    /// </summary>
    internal ValueTask HandOverAsync()
    {
        Volatile.Write(ref _handedOff, 1);
        return DisposeAsync();
    }

    /// <summary>
    /// The next connection, or null once the listener is disposed (disposing wakes a pending call).
    /// One call at a time. At the fd limit (<c>EMFILE</c>, <c>ENFILE</c>, <c>ENOBUFS</c>, <c>ENOMEM</c>,
    /// or fewer than <see cref="FdListenerOptions.FdHeadroom"/> fds free) the call waits until fds are
    /// free again instead of failing; a client that gave up in the backlog is skipped.
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The accepted connection, or null.</returns>
    /// <exception cref="PipeTransportException"><c>accept4</c> failed for a reason that waiting does not cure.</exception>
    public async ValueTask<FdConnection?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        if (_accepted is null)
        {
            return await AcceptOneAsync(_sockets[0], cancellationToken).ConfigureAwait(false);
        }

        try
        {
            return await _accepted.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException e) when (e.InnerException is { } error && Volatile.Read(ref _disposed) == 0)
        {
            ExceptionDispatchInfo.Throw(error);
            throw;
        }
        catch (ChannelClosedException)
        {
            return null;
        }
    }

    /// <summary>Stops listening, wakes a pending accept (it returns null), closes the socket and removes our Unix socket file.</summary>
    /// <returns>A task that completes when the listener is closed.</returns>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _disposing.Cancel();
        foreach (FdChannel socket in _sockets)
        {
            socket.Unregister(new ObjectDisposedException(nameof(FdListener)));
        }

        if (_acceptLoops is not null)
        {
            await Task.WhenAll(_acceptLoops).ConfigureAwait(false);
            _accepted!.Writer.TryComplete();

            // Handed over: clients already accepted are still the application's (AcceptAsync returns
            // them, then null); nobody else would serve them.
            while (Volatile.Read(ref _handedOff) == 0 && _accepted.Reader.TryRead(out FdConnection? orphan))
            {
                await orphan.DisposeAsync().ConfigureAwait(false);
            }
        }

        // Remove the file only if it is still the one we created (someone may have replaced it) and
        // no successor serves it. Asked while our socket is open: until then its inode number
        // cannot be given to another file.
        bool ours = _unixPath is not null && Volatile.Read(ref _handedOff) == 0
            && Sys.Stat(_unixPath, followLinks: true, out _, out ulong inode) == 0 && inode == _unixInode;
        foreach (FdChannel socket in _sockets)
        {
            socket.Close();
        }

        if (ours)
        {
            Sys.Unlink(_unixPath!);
        }

        _disposing.Dispose();
    }

    private async Task AcceptLoopAsync(FdChannel socket, CancellationToken stop)
    {
        try
        {
            while (await AcceptOneAsync(socket, stop).ConfigureAwait(false) is { } connection)
            {
                if (!_accepted!.Writer.TryWrite(connection))
                {
                    await connection.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e)
        {
            _accepted!.Writer.TryComplete(e);
        }
    }

    private async ValueTask<FdConnection?> AcceptOneAsync(FdChannel socket, CancellationToken cancellationToken)
    {
        TimeSpan retryDelay = TimeSpan.Zero; // not zero while this call is paused at the fd limit
        try
        {
            while (true)
            {
                if (Volatile.Read(ref _disposed) != 0)
                {
                    return null;
                }

                int fd = HasHeadroom() ? socket.WithFd(0, static (_, listenFd) => Sys.Accept(listenFd)) : NoHeadroom;
                if (fd >= 0)
                {
                    FdConnection connection = CreateConnection(fd);
                    if (Volatile.Read(ref _atFdLimit) != 0 && HasHeadroom())
                    {
                        LeaveFdLimit(); // the next accept will not hold back: the stay is over
                    }

                    return connection;
                }

                if (fd == -Libc.EAGAIN)
                {
                    retryDelay = TimeSpan.Zero;
                    if (Volatile.Read(ref _atFdLimit) != 0)
                    {
                        LeaveFdLimit(); // accepting runs: nothing holds it back
                    }
                    try
                    {
                        await socket.Registration!.Read.WaitAsync(true, cancellationToken).ConfigureAwait(false);
                    }
                    catch (ObjectDisposedException) when (Volatile.Read(ref _disposed) != 0)
                    {
                        return null;
                    }

                    continue;
                }

                if (fd != NoHeadroom)
                {
                    OnAcceptError(-fd);
                    if (IsConnectionError(-fd))
                    {
                        continue; // the client gave up, or its network failed, before we took it
                    }
                }

                if (fd == NoHeadroom || IsFdShortage(-fd))
                {
                    if (retryDelay == TimeSpan.Zero)
                    {
                        retryDelay = FirstRetryDelay;
                        EnterFdLimit(fd == NoHeadroom ? 0 : -fd);
                    }
                    else
                    {
                        retryDelay = TimeSpan.FromTicks(Math.Min(retryDelay.Ticks * 2, MaxRetryDelay.Ticks));
                    }

                    if (!await WaitToRetryAsync(retryDelay, cancellationToken).ConfigureAwait(false))
                    {
                        return null;
                    }

                    continue;
                }

                if (Volatile.Read(ref _disposed) != 0)
                {
                    return null;
                }

                throw PipeTransportException.FromResult(fd, "accept4", _name);
            }
        }
        finally
        {
            if (Volatile.Read(ref _disposed) != 0)
            {
                LeaveFdLimit(); // a stay at the limit ends with the listener
            }
        }
    }

    /// <summary>
    /// Errors of one pending connection that Linux reports from <c>accept4</c> (see accept(2)): the
    /// connection is gone, the listener is fine.
    /// </summary>
    private static bool IsConnectionError(int errno) => errno is Libc.ECONNABORTED or Libc.EPROTO or Libc.EPERM
        or Libc.ECONNRESET or Libc.ENETDOWN or Libc.ENOPROTOOPT or Libc.EHOSTDOWN or Libc.ENONET
        or Libc.EHOSTUNREACH or Libc.EOPNOTSUPP or Libc.ENETUNREACH;

    /// <summary>The process or the system is out of fds or socket memory: waiting cures it.</summary>
    private static bool IsFdShortage(int errno) => errno is Libc.EMFILE or Libc.ENFILE or Libc.ENOBUFS or Libc.ENOMEM;

    /// <summary>Whether one more connection leaves <see cref="FdListenerOptions.FdHeadroom"/> fds free (at most a quarter of the limit).</summary>
    private bool HasHeadroom()
    {
        if (_headroom == 0)
        {
            return true;
        }

        long keep = Math.Min(_headroom, FdTable.Limit / 4);
        return FdTable.Free(keep) > keep;
    }

    /// <summary>Waits <paramref name="delay"/>, or less when this library closes an fd; false once the listener is disposed.</summary>
    private async ValueTask<bool> WaitToRetryAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        using (var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposing.Token))
        {
            await Task.WhenAny(Task.Delay(delay, wait.Token), FdTable.NextCloseAsync()).ConfigureAwait(false);
            wait.Cancel(); // stops the timer
        }

        cancellationToken.ThrowIfCancellationRequested();
        return Volatile.Read(ref _disposed) == 0;
    }

    // accept4 failed with an errno other than EAGAIN.
    private void OnAcceptError(int errno)
    {
        TransportMetrics.AcceptError(errno);
        _events?.Invoke(new FdListenerEvent(FdListenerEventKind.AcceptError, _name, (Errno)errno, TimeSpan.Zero));
    }

    // Accepting holds back at the fd limit: the first of a stay, whichever accept loop it is.
    private void EnterFdLimit(int errno)
    {
        if (Interlocked.Exchange(ref _atFdLimit, 1) == 0)
        {
            Volatile.Write(ref _atFdLimitSince, Stopwatch.GetTimestamp());
            TransportMetrics.FdLimitEntered();
            _events?.Invoke(new FdListenerEvent(FdListenerEventKind.FdLimitEntered, _name, (Errno)errno, TimeSpan.Zero));
        }
    }

    // An accept left headroom (or found nothing waiting): the stay at the limit is over.
    private void LeaveFdLimit()
    {
        if (Interlocked.Exchange(ref _atFdLimit, 0) == 1)
        {
            TimeSpan stay = Stopwatch.GetElapsedTime(Volatile.Read(ref _atFdLimitSince));
            TransportMetrics.FdLimitLeft();
            _events?.Invoke(new FdListenerEvent(FdListenerEventKind.FdLimitLeft, _name, 0, stay));
        }
    }

    private FdConnection CreateConnection(int fd)
    {
        // Linux gives the lowest free number, so every fd below this one is open: fds are short, count again.
        if (_headroom != 0 && fd >= FdTable.Limit - _headroom)
        {
            FdTable.Invalidate();
        }

        var handle = new SafeFdHandle(fd);
        FdChannel channel = FdChannel.AdoptNew(handle, FdKind.Socket, _reactors.Next());
        if (_unixPath is null && _connectionOptions.NoDelay && LocalEndPoint is IPEndPoint)
        {
            Sys.SetSockOptInt(fd, Libc.IPPROTO_TCP, Libc.TCP_NODELAY, 1);
        }

        return new FdConnection(channel, channel, _connectionOptions, transport: LocalEndPoint is IPEndPoint ? ConnectionTransport.Tcp : ConnectionTransport.Unix);
    }

    private static SafeFdHandle BindOne(int family, byte[] address, string name, FdListenerOptions options, EndPoint endPoint, string? unixPath, FileOwnership ownership)
    {
        int fd = Sys.Socket(family);
        if (fd < 0)
        {
            throw PipeTransportException.FromResult(fd, "socket", name);
        }

        var handle = new SafeFdHandle(fd);
        try
        {
            if (family != Libc.AF_UNIX)
            {
                if (options.ReuseAddress)
                {
                    Sys.SetSockOptInt(fd, Libc.SOL_SOCKET, Libc.SO_REUSEADDR, 1);
                }

                if (options.ReusePort)
                {
                    Sys.SetSockOptInt(fd, Libc.SOL_SOCKET, Libc.SO_REUSEPORT, 1);
                }

                if (family == Libc.AF_INET6 && endPoint is IPEndPoint ip && ip.Address.Equals(IPAddress.IPv6Any))
                {
                    Sys.SetSockOptInt(fd, Libc.IPPROTO_IPV6, Libc.IPV6_V6ONLY, 0); // [::] takes IPv4 too
                }
            }

            int r = Sys.Bind(fd, address);
            if (r < 0)
            {
                throw PipeTransportException.FromResult(r, "bind", name);
            }

            // Nobody can connect before listen(): set the owner and the mode in between.
            if (unixPath is not null && ownership.Apply(unixPath) is { } chownError)
            {
                Sys.Unlink(unixPath);
                throw chownError;
            }

            if (unixPath is not null && (r = Sys.Chmod(unixPath, options.UnixSocketMode)) < 0)
            {
                Sys.Unlink(unixPath);
                throw PipeTransportException.FromResult(r, "chmod", unixPath);
            }

            r = Sys.Listen(fd, options.Backlog);
            if (r < 0)
            {
                if (unixPath is not null)
                {
                    Sys.Unlink(unixPath);
                }

                throw PipeTransportException.FromResult(r, "listen", name);
            }

            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>A socket file nobody listens on (a crashed server's) is removed; a live one is EADDRINUSE.</summary>
    private static void RemoveStaleSocket(string path, byte[] address, string name)
    {
        if (Sys.Stat(path, followLinks: false, out uint type, out _) != 0 || type != Libc.S_IFSOCK)
        {
            return; // missing, or not a socket: bind reports what is wrong
        }

        int fd = Sys.Socket(Libc.AF_UNIX);
        if (fd < 0)
        {
            return;
        }

        using var probe = new SafeFdHandle(fd);
        int r = Sys.Connect(fd, address);
        if (r == -Libc.ECONNREFUSED)
        {
            Sys.Unlink(path);
        }
        else if (r == 0 || r == -Libc.EAGAIN || r == -Libc.EINPROGRESS)
        {
            throw new PipeTransportException(Errno.EADDRINUSE, "bind", name, "a server is already listening on this socket");
        }
    }
}
