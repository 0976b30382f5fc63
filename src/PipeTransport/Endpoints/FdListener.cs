using System.Net;
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
/// when the socket is readable, taking every pending connection before waiting again.
/// </summary>
public sealed class FdListener : IAsyncDisposable
{
    private readonly FdChannel[] _sockets;
    private readonly FdConnectionOptions _connectionOptions;
    private readonly ReactorGroup _reactors;
    private readonly string _name;
    private readonly string? _unixPath;
    private readonly ulong _unixInode;
    private readonly Channel<FdConnection>? _accepted;
    private readonly Task[]? _acceptLoops;
    private readonly CancellationTokenSource? _stopLoops;
    private int _disposed;

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
        if (sockets.Length > 1)
        {
            // SO_REUSEPORT: the kernel spreads connections over the sockets; one accept loop each.
            _accepted = Channel.CreateUnbounded<FdConnection>(new UnboundedChannelOptions { SingleWriter = false, SingleReader = false });
            _stopLoops = new CancellationTokenSource();
            _acceptLoops = Array.ConvertAll(sockets, s => AcceptLoopAsync(s, _stopLoops.Token));
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
                        Syscall.stat(unixPath, out Stat st);
                        inode = st.st_ino;
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
                Syscall.unlink(unixPath);
            }

            throw;
        }
    }

    /// <summary>
    /// Adopts a listening socket someone else bound (an inherited fd, systemd socket activation).
    /// The listener owns it from now on.
    /// </summary>
    /// <param name="listeningSocket">A socket that is already listening.</param>
    /// <param name="options">Options (only the connection options and reactors apply).</param>
    /// <returns>The listener.</returns>
    public static FdListener FromHandle(SafeHandle listeningSocket, FdListenerOptions? options = null)
    {
        options ??= new FdListenerOptions();
        ReactorGroup reactors = options.ReactorGroup ?? (options.ConnectionOptions ?? FdConnectionOptions.Default).Reactors;
        FdChannel channel = FdChannel.Adopt(listeningSocket, reactors.Next(), disposeHandle: true);
        try
        {
            int listening = channel.WithFd(0, static (_, fd) =>
                Sys.GetSockOptInt(fd, Libc.SOL_SOCKET, Libc.SO_ACCEPTCONN, out int v) < 0 ? -1 : v);
            if (channel.Kind != FdKind.Socket || listening != 1)
            {
                throw new ArgumentException($"{channel.Name} is not a listening socket.", nameof(listeningSocket));
            }

            EndPoint local = SocketAddresses.TryName(channel, peer: false) ?? new IPEndPoint(IPAddress.None, 0);
            return new FdListener([channel], local, options, channel.Name, null, 0);
        }
        catch
        {
            channel.Close();
            throw;
        }
    }

    /// <summary>
    /// The next connection, or null once the listener is disposed (disposing wakes a pending call).
    /// One call at a time.
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The accepted connection, or null.</returns>
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

        _stopLoops?.Cancel();
        foreach (FdChannel socket in _sockets)
        {
            socket.Unregister(new ObjectDisposedException(nameof(FdListener)));
        }

        if (_acceptLoops is not null)
        {
            await Task.WhenAll(_acceptLoops).ConfigureAwait(false);
            _accepted!.Writer.TryComplete();
            while (_accepted.Reader.TryRead(out FdConnection? orphan))
            {
                await orphan.DisposeAsync().ConfigureAwait(false);
            }
        }

        foreach (FdChannel socket in _sockets)
        {
            socket.Close();
        }

        // Remove the file only if it is still the one we created (someone may have replaced it).
        if (_unixPath is not null && Syscall.stat(_unixPath, out Stat st) == 0 && st.st_ino == _unixInode)
        {
            Syscall.unlink(_unixPath);
        }
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
        while (true)
        {
            if (Volatile.Read(ref _disposed) != 0)
            {
                return null;
            }

            int fd = socket.WithFd(0, static (_, listenFd) => Sys.Accept(listenFd));
            if (fd >= 0)
            {
                return CreateConnection(fd);
            }

            switch (-fd)
            {
                case Libc.EAGAIN:
                    try
                    {
                        await socket.Registration!.Read.WaitAsync(true, cancellationToken).ConfigureAwait(false);
                    }
                    catch (ObjectDisposedException) when (Volatile.Read(ref _disposed) != 0)
                    {
                        return null;
                    }

                    continue;
                case Libc.ECONNABORTED:
                case 71: // EPROTO
                    TransportMetrics.AcceptError(-fd);
                    continue; // the client gave up before we took it
                default:
                    if (Volatile.Read(ref _disposed) != 0)
                    {
                        return null;
                    }

                    TransportMetrics.AcceptError(-fd);
                    throw PipeTransportException.FromResult(fd, "accept4", _name);
            }
        }
    }

    private FdConnection CreateConnection(int fd)
    {
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
                Syscall.unlink(unixPath);
                throw chownError;
            }

            if (unixPath is not null && Syscall.chmod(unixPath, (FilePermissions)(uint)options.UnixSocketMode) != 0)
            {
                Errno errno = Stdlib.GetLastError();
                Syscall.unlink(unixPath);
                throw new PipeTransportException(errno, "chmod", unixPath);
            }

            r = Sys.Listen(fd, options.Backlog);
            if (r < 0)
            {
                if (unixPath is not null)
                {
                    Syscall.unlink(unixPath);
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
        if (Syscall.lstat(path, out Stat st) != 0 || (st.st_mode & FilePermissions.S_IFMT) != FilePermissions.S_IFSOCK)
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
            Syscall.unlink(path);
        }
        else if (r == 0 || r == -Libc.EAGAIN || r == -Libc.EINPROGRESS)
        {
            throw new PipeTransportException(Errno.EADDRINUSE, "bind", name, "a server is already listening on this socket");
        }
    }
}
