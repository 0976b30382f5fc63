using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;
using PipeTransport.Endpoints;
using PipeTransport.Interop;

namespace PipeTransport.Bridge;

/// <summary>Opens addresses as <see cref="FdConnection"/>s; every failure becomes a <see cref="BridgeFailure"/> naming the address.</summary>
internal sealed class AddressOpener(BridgeOptions options, CreatedPaths createdPaths, BridgeLog log)
{
    /// <summary>Permissions asked of open(2) for a file it creates (the umask then applies), as touch(1) and socat do.</summary>
    private const UnixFileMode DefaultFileMode =
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite;

    // The copy engine's loop does no blocking work, so its continuations run inline (on the reactor
    // thread that completed the read) instead of hopping to the thread pool; the pause thresholds
    // scale with the block size so that one block never stalls a flush on its own. One bridge (no
    // --fork) puts every fd on one reactor: both engines then run on that one thread, never handing
    // a wake-up from one fd's reactor to the other's; --fork spreads connections over the default group.
    public FdConnectionOptions ConnectionOptions { get; } = new()
    {
        ReactorGroup = options.Fork ? null : SingleReactor.Value,
        BufferSize = options.CopyBlockSize,
        InputPauseThreshold = Math.Max(4L * options.CopyBlockSize, 1 << 20),
        InputResumeThreshold = Math.Max(2L * options.CopyBlockSize, 1 << 19),
        OutputPauseThreshold = Math.Max(4L * options.CopyBlockSize, 1 << 16),
        OutputResumeThreshold = Math.Max(2L * options.CopyBlockSize, 1 << 15),
        ApplicationScheduler = System.IO.Pipelines.PipeScheduler.Inline,
    };

    private static readonly Lazy<ReactorGroup> SingleReactor = new(() => new ReactorGroup(1));

    /// <summary>Opens <paramref name="address"/> for <paramref name="role"/>; a listen address accepts one connection.</summary>
    public async Task<OpenedAddress> OpenAsync(Address address, Role role, CancellationToken cancellationToken)
    {
        var children = new List<ChildProgram>();
        try
        {
            return await OpenAsync(address, role, children, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            foreach (ChildProgram child in children) await child.StopAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task<OpenedAddress> OpenAsync(Address address, Role role, List<ChildProgram> children, CancellationToken cancellationToken)
    {
        // A file address naming a FIFO (a bare path, gopen:, open:) opens it as pipe:PATH does, without
        // a thread blocked in open(2) waiting for the peer.
        if (address is FileAddress { Options.UnlinkEarly: false } file && Fifo.Exists(file.Path))
            address = new FifoAddress(file.Text, file.Path, EchoWhenBoth: true) { Options = file.Options };
        // pipe:PATH used both ways is the FIFO's read end and its write end: an echo.
        if (address is FifoAddress { EchoWhenBoth: true } echo && role == Role.Both)
            address = new SplitAddress(echo.Text, echo, echo);
        if (address is SplitAddress split)
        {
            // Both halves open at once: each may wait for a peer that the other one is (the read and
            // the write end of one FIFO wait for each other).
            (FdConnection? reader, FdConnection? writer) = await OpenBothAsync(
                async ct => role.HasFlag(Role.Read) ? await OpenConnectionAsync(split.Read, Role.Read, children, ct).ConfigureAwait(false) : null,
                async ct => role.HasFlag(Role.Write) ? await OpenConnectionAsync(split.Write, Role.Write, children, ct).ConfigureAwait(false) : null,
                cancellationToken).ConfigureAwait(false);
            return new OpenedAddress(split.Read, reader, split.Write, writer, children);
        }
        FdConnection connection = await OpenConnectionAsync(address, role, children, cancellationToken).ConfigureAwait(false);
        return new OpenedAddress(address, role.HasFlag(Role.Read) ? connection : null,
            address, role.HasFlag(Role.Write) ? connection : null, children);
    }

    /// <summary>
    /// Runs two opens at once. The first failure cancels the other; what did open is then disposed,
    /// and the first failure (not the cancellation it caused) is thrown.
    /// </summary>
    public static async Task<(T? First, T? Second)> OpenBothAsync<T>(
        Func<CancellationToken, Task<T?>> openFirst, Func<CancellationToken, Task<T?>> openSecond, CancellationToken cancellationToken)
        where T : class, IAsyncDisposable
    {
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        async Task<T?> OpenOrCancelOther(Func<CancellationToken, Task<T?>> open)
        {
            try
            {
                return await open(failed.Token).ConfigureAwait(false);
            }
            catch
            {
                failed.Cancel();
                throw;
            }
        }
        Task<T?> first = OpenOrCancelOther(openFirst), second = OpenOrCancelOther(openSecond);
        try
        {
            await Task.WhenAll(first, second).ConfigureAwait(false);
        }
        catch
        {
            if (first.IsCompletedSuccessfully && first.Result is { } a) await a.DisposeAsync().ConfigureAwait(false);
            if (second.IsCompletedSuccessfully && second.Result is { } b) await b.DisposeAsync().ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            Exception error = new[] { first, second }
                .Select(t => t.Exception?.InnerException)
                .FirstOrDefault(e => e is not null and not OperationCanceledException)
                ?? new OperationCanceledException();
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        }
        return (first.Result, second.Result);
    }

    /// <summary>
    /// The name a listen address is handed off under: the endpoint it binds (<c>tcp:127.0.0.1:8080</c>,
    /// <c>unix:/full/path</c>), as the Kestrel transport names its endpoints, whatever the address's spelling.
    /// </summary>
    public static string HandOffName(Address address) => address switch
    {
        UnixListenAddress unix => "unix:" + Path.GetFullPath(unix.Path),
        TcpListenAddress tcp => $"tcp:{new IPEndPoint(ResolveListenHost(tcp), tcp.Port)}",
        _ => throw new InvalidOperationException($"{address} cannot be handed off"),
    };

    /// <summary>
    /// Binds a listen address, or adopts it from <paramref name="takeover"/> (a predecessor's, see --handoff),
    /// and reports it with -d -d or --stats ("listening on ...").
    /// </summary>
    public FdListener Listen(Address address, int fdHeadroom = FdListenerOptions.DefaultFdHeadroom, HandOff.HandOffTakeover? takeover = null)
    {
        try
        {
            EndPoint? endPoint = address switch
            {
                UnixListenAddress unix => new UnixDomainSocketEndPoint(unix.Path),
                TcpListenAddress tcp => new IPEndPoint(ResolveListenHost(tcp), tcp.Port),
                AcceptFdAddress => null,
                _ => throw new InvalidOperationException($"{address} is not a listen address"),
            };
            AddressOptions o = address.Options;
            var listenerOptions = new FdListenerOptions
            {
                ConnectionOptions = ConnectionOptions,
                FdHeadroom = fdHeadroom,
                UnixSocketOwner = o.User,
                UnixSocketGroup = o.Group,
            };
            if (o.Backlog is { } backlog) listenerOptions.Backlog = backlog;
            if (o.ReuseAddress is { } reuse) listenerOptions.ReuseAddress = reuse;
            if (o.Mode is { } mode) listenerOptions.UnixSocketMode = mode;
            if (log.Level >= BridgeLog.WarningLevel) listenerOptions.Events = e => log.Warning(Describe(address, e));
            // The predecessor's socket: it accepts there too until our commit, so no client is refused.
            if (takeover?.TakeListener(HandOffName(address), listenerOptions) is { } adopted)
            {
                string takenOver = $"listening on {Describe(address, adopted.LocalEndPoint)} (taken over)";
                if (options.Stats) log.Report(takenOver);
                else log.Notice(takenOver);
                return adopted;
            }
            if (address is UnixListenAddress { Options.UnlinkEarly: true } unixListen)
                UnlinkEarly(unixListen.Path);
            FdListener listener;
            if (address is AcceptFdAddress inherited)
            {
                listener = AdoptListener(inherited, listenerOptions);
            }
            else
            {
                // FdListener removes the socket file it created when disposed (also on Ctrl-C/SIGTERM).
                listener = FdListener.Bind(endPoint!, listenerOptions);
            }
            string listening = $"listening on {Describe(address, listener.LocalEndPoint)}";
            if (options.Stats) log.Report(listening);
            else log.Notice(listening);
            return listener;
        }
        catch (Exception e) when (e is not BridgeFailure and not OperationCanceledException)
        {
            throw BridgeFailure.From(address, e);
        }
    }

    /// <summary>
    /// Pipes and FIFOs we read or write get a bigger kernel buffer (1 MiB, or the block size if
    /// larger; the kernel caps it at /proc/sys/fs/pipe-max-size): every wake-up of the bridge, and of
    /// the process on the other end, then moves up to 16 times more than the default 64 KiB.
    /// </summary>
    private void GrowPipeBuffers(FdConnection connection)
    {
        int size = Math.Max(options.BlockSize, PipeBufferSize);
        try
        {
            PipeCapacity.TrySet(connection.InputFd, size);
            if (!ReferenceEquals(connection.InputFd, connection.OutputFd))
                PipeCapacity.TrySet(connection.OutputFd, size);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private const int PipeBufferSize = 1 << 20;

    /// <summary>A FIFO pipebridge creates is private unless mode= says otherwise.</summary>
    private const UnixFileMode DefaultFifoMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private async Task<FdConnection> OpenConnectionAsync(Address address, Role role, List<ChildProgram> children, CancellationToken cancellationToken)
    {
        FdConnection connection = await OpenUngrownAsync(address, role, children, cancellationToken).ConfigureAwait(false);
        if (address is FifoAddress or StdioAddress or FdAddress or AnonymousPipeAddress or ExecAddress)
            GrowPipeBuffers(connection);
        return connection;
    }

    private async Task<FdConnection> OpenUngrownAsync(Address address, Role role, List<ChildProgram> children, CancellationToken cancellationToken)
    {
        try
        {
            switch (address)
            {
                case FifoAddress fifo:
                    return await OpenFifoAsync(fifo, role, cancellationToken).ConfigureAwait(false);
                case StdioAddress stdio:
                    if ((role.HasFlag(Role.Read) && !stdio.CanRead) || (role.HasFlag(Role.Write) && !stdio.CanWrite))
                        throw new InvalidOperationException($"{stdio} cannot be opened for {role}");
                    return role switch
                    {
                        Role.Read => FdConnection.FromFd(new SafeFileHandle(0, ownsHandle: true), ConnectionOptions),
                        Role.Write => FdConnection.FromFd(new SafeFileHandle(1, ownsHandle: true), ConnectionOptions),
                        _ => FdConnection.FromFds(new SafeFileHandle(0, ownsHandle: true), new SafeFileHandle(1, ownsHandle: true), ConnectionOptions),
                    };
                case FdAddress fd:
                    if (Sys.CheckOpen(fd.Fd) is var r and < 0)
                        throw PipeTransportException.FromResult(r, "fcntl", fd.Text);
                    // An inherited fd stays ours: exec: children get 0, 1 and 2 only.
                    Sys.SetCloseOnExec(fd.Fd);
                    return FdConnection.FromFd(new SafeFileHandle(fd.Fd, ownsHandle: true), ConnectionOptions);
                case AnonymousPipeAddress:
                    return OpenAnonymousPipe(role);
                case ExecAddress exec:
                {
                    ChildProgram child = ChildProgram.Start(exec, role, ConnectionOptions);
                    lock (children) children.Add(child);
                    log.Info($"started {exec} (pid {child.Pid})");
                    return child.Connection;
                }
                case FileAddress { Kind: FileKind.GOpen } gopen when IsSocket(gopen.Path):
                    return await FdConnection.ConnectAsync(new UnixDomainSocketEndPoint(gopen.Path), ConnectionOptions, cancellationToken).ConfigureAwait(false);
                case FileAddress file:
                    return FdConnection.FromFd(OpenFile(file, role), ConnectionOptions);
                case UnixConnectAddress unix:
                    return await FdConnection.ConnectAsync(new UnixDomainSocketEndPoint(unix.Path), ConnectionOptions, cancellationToken).ConfigureAwait(false);
                case TcpConnectAddress tcp:
                    return await ConnectTcpAsync(tcp, cancellationToken).ConfigureAwait(false);
                case UnixListenAddress or TcpListenAddress or AcceptFdAddress:
                {
                    await using FdListener listener = Listen(address);
                    FdConnection accepted = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false)
                        ?? throw new OperationCanceledException(cancellationToken);
                    if (log.ShowsNotices) log.Notice($"accepted connection from {PeerOf(accepted)} on {address}");
                    return accepted;
                }
                default:
                    throw new InvalidOperationException($"cannot open {address}");
            }
        }
        catch (Exception e) when (e is not BridgeFailure and not OperationCanceledException)
        {
            throw BridgeFailure.From(address, e);
        }
    }

    /// <summary>
    /// The open(2) flags of each <see cref="FileKind"/>, then those of creat, excl, append and trunc;
    /// mode applies when the file is created.
    /// </summary>
    private static SafeFdHandle OpenFile(FileAddress file, Role role)
    {
        AddressOptions o = file.Options;
        int flags = role switch { Role.Read => Libc.O_RDONLY, Role.Write => Libc.O_WRONLY, _ => Libc.O_RDWR };
        bool writes = role.HasFlag(Role.Write);
        switch (file.Kind)
        {
            case FileKind.File:
                if (writes) flags |= Libc.O_CREAT;
                if (role == Role.Write && !o.Append) flags |= Libc.O_TRUNC;
                break;
            case FileKind.GOpen:
                flags |= Libc.O_CREAT;
                if (writes) flags |= Libc.O_APPEND;
                break;
            case FileKind.Create:
                flags |= Libc.O_CREAT | Libc.O_TRUNC;
                break;
        }
        if (o.Creat) flags |= Libc.O_CREAT;
        if (o.Truncate) flags |= Libc.O_TRUNC;
        if (o.Append) flags |= Libc.O_APPEND;
        if (o.Exclusive) flags |= Libc.O_EXCL;
        if (o.UnlinkEarly) UnlinkEarly(file.Path);
        int fd = Sys.Open(file.Path, flags, (int)(o.Mode ?? DefaultFileMode));
        if (fd < 0) throw PipeTransportException.FromResult(fd, "open", file.Path);
        var handle = new SafeFdHandle(fd);
        if (Ownership(o, file.Path)?.Apply(file.Path) is { } error)
        {
            handle.Dispose();
            throw error;
        }
        return handle;
    }

    private static bool IsSocket(string path) =>
        Sys.Stat(path, followLinks: true, out uint type, out _) == 0 && type == Libc.S_IFSOCK;

    /// <summary>
    /// socat's bare pipe: what the bridge writes it reads back. Opened for one direction only, the other
    /// end is closed at once (reading then sees EOF, writing EPIPE).
    /// </summary>
    private FdConnection OpenAnonymousPipe(Role role)
    {
        int r = Sys.Pipe(out int readFd, out int writeFd);
        if (r < 0) throw PipeTransportException.FromResult(r, "pipe", "pipe");
        var readEnd = new SafeFdHandle(readFd);
        var writeEnd = new SafeFdHandle(writeFd);
        try
        {
            if (role == Role.Read) writeEnd.Dispose();
            if (role == Role.Write) readEnd.Dispose();
            return role switch
            {
                Role.Read => FdConnection.FromFd(readEnd, ConnectionOptions),
                Role.Write => FdConnection.FromFd(writeEnd, ConnectionOptions),
                _ => FdConnection.FromFds(readEnd, writeEnd, ConnectionOptions),
            };
        }
        catch
        {
            readEnd.Dispose();
            writeEnd.Dispose();
            throw;
        }
    }

    /// <summary>user= and group=, or null when neither was given.</summary>
    private static FileOwnership? Ownership(AddressOptions o, string path) =>
        o.User is null && o.Group is null ? null : FileOwnership.Resolve(o.User, o.Group, path);

    /// <summary>unlink-early: remove what is at the path (not a directory) before it is created or opened.</summary>
    private static void UnlinkEarly(string path)
    {
        int r = Sys.Unlink(path);
        if (r < 0 && r != -Libc.ENOENT) throw PipeTransportException.FromResult(r, "unlink", path);
    }

    private async Task<FdConnection> ConnectTcpAsync(TcpConnectAddress tcp, CancellationToken cancellationToken)
    {
        IPAddress[] candidates = IPAddress.TryParse(tcp.Host, out IPAddress? literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(tcp.Host, cancellationToken).ConfigureAwait(false);
        if (tcp.Family is { } family)
            candidates = Array.FindAll(candidates, a => a.AddressFamily == family);
        Exception? last = null;
        foreach (IPAddress candidate in candidates)
        {
            try
            {
                return await FdConnection.ConnectAsync(new IPEndPoint(candidate, tcp.Port), ConnectionOptions, cancellationToken).ConfigureAwait(false);
            }
            catch (PipeTransportException e)
            {
                last = e;
            }
        }
        throw last ?? new BridgeFailure(tcp, tcp.Family is null ? "resolve: no address found" : $"resolve: no {FamilyName(tcp.Family)} address found");
    }

    private static IPAddress ResolveListenHost(TcpListenAddress tcp)
    {
        if (tcp.Host is null) return tcp.Family == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any;
        if (IPAddress.TryParse(tcp.Host, out IPAddress? literal)) return literal;
        IPAddress[] addresses = Dns.GetHostAddresses(tcp.Host);
        AddressFamily preferred = tcp.Family ?? AddressFamily.InterNetwork;
        return addresses.FirstOrDefault(a => a.AddressFamily == preferred)
            ?? (tcp.Family is null ? addresses.FirstOrDefault() : null)
            ?? throw new BridgeFailure(tcp, tcp.Family is null ? "resolve: no address found" : $"resolve: no {FamilyName(tcp.Family)} address found");
    }

    private static string FamilyName(AddressFamily? family) => family == AddressFamily.InterNetworkV6 ? "IPv6" : "IPv4";

    /// <summary>How notices name an accepted peer: its IP address and port, or the pid of a Unix socket's peer.</summary>
    public static string PeerOf(FdConnection connection) => connection.RemoteEndPoint switch
    {
        IPEndPoint ip when ip.AddressFamily == AddressFamily.InterNetworkV6 => $"[{ip.Address}]:{ip.Port}",
        IPEndPoint ip => $"{ip.Address}:{ip.Port}",
        _ when connection.PeerCredentials is { } credentials => $"pid {credentials.ProcessId} (uid {credentials.UserId})",
        _ => "an unnamed peer",
    };

    /// <summary>The -d warnings of a listener at the fd limit.</summary>
    private static string Describe(Address address, FdListenerEvent e) => e.Kind switch
    {
        FdListenerEventKind.FdLimitEntered => e.Errno == 0
            ? $"accepting on {address} paused: too few fds free, clients wait in the backlog"
            : $"accepting on {address} paused: accept4: {BridgeFailure.Describe((int)e.Errno)}; clients wait in the backlog",
        FdListenerEventKind.FdLimitLeft => string.Create(CultureInfo.InvariantCulture,
            $"accepting on {address} resumed after {e.Duration.TotalSeconds:0.000} s at the fd limit"),
        _ => $"accepting on {address}: accept4: {BridgeFailure.Describe((int)e.Errno)}",
    };

    /// <summary>accept-fd:N: the inherited socket must be open and listening; it is made O_CLOEXEC so children do not get it.</summary>
    private static FdListener AdoptListener(AcceptFdAddress address, FdListenerOptions listenerOptions)
    {
        if (Sys.CheckOpen(address.Fd) is var r and < 0)
            throw PipeTransportException.FromResult(r, "fcntl", $"fd {address.Fd}");
        var handle = new SafeFdHandle(address.Fd);
        try
        {
            return FdListener.FromHandle(handle, listenerOptions);
        }
        catch (ArgumentException e)
        {
            handle.Dispose();
            throw new BridgeFailure(address, $"fd {address.Fd} is not a listening socket", e);
        }
    }

    private static string Describe(Address address, EndPoint endPoint) => endPoint switch
    {
        IPEndPoint ip when address is AcceptFdAddress && ip.AddressFamily == AddressFamily.InterNetworkV6 => $"{address} ([{ip.Address}]:{ip.Port})",
        IPEndPoint ip when address is AcceptFdAddress => $"{address} ({ip.Address}:{ip.Port})",
        UnixDomainSocketEndPoint unix when address is AcceptFdAddress => $"{address} (unix:{unix})",
        IPEndPoint ip when ip.AddressFamily == AddressFamily.InterNetworkV6 => $"tcp-listen:[{ip.Address}]:{ip.Port}",
        IPEndPoint ip => $"tcp-listen:{ip.Address}:{ip.Port}",
        _ => address.Text,
    };

    /// <summary>Opens one end of the FIFO, waiting for the peer the way cat would, but cancellably.</summary>
    private async Task<FdConnection> OpenFifoAsync(FifoAddress fifo, Role role, CancellationToken cancellationToken)
    {
        if (role == Role.Both)
            throw new UsageException($"fifo:{fifo.Path} carries one direction only: use -u, or fifo:IN!!fifo:OUT");
        AddressOptions o = fifo.Options;
        if (o.UnlinkEarly) UnlinkEarly(fifo.Path);
        if (!File.Exists(fifo.Path) && !Directory.Exists(fifo.Path))
        {
            try
            {
                Fifo.Create(fifo.Path, o.Mode ?? DefaultFifoMode);
                createdPaths.Add(fifo.Path);
                log.Notice($"created {fifo}");
            }
            catch (PipeTransportException e) when (e.Errno == Mono.Unix.Native.Errno.EEXIST)
            {
                // Someone else made it between the check and mkfifo: use theirs.
            }
        }
        if (Ownership(o, fifo.Path)?.Apply(fifo.Path) is { } error) throw error;
        FileAccess access = role == Role.Read ? FileAccess.Read : FileAccess.Write;
        SafeFdHandle end = await Fifo.OpenAsync(fifo.Path, access, ConnectionOptions, cancellationToken).ConfigureAwait(false);
        try
        {
            return FdConnection.FromFd(end, ConnectionOptions);
        }
        catch
        {
            end.Dispose();
            throw;
        }
    }
}
