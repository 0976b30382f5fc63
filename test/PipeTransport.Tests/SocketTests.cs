using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Mono.Unix.Native;
using NUnit.Framework;

namespace PipeTransport.Tests;

/// <summary>What only sockets have: binding, connecting, resets, credentials, many connections.</summary>
public sealed class SocketTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("pt-sock-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test, CancelAfter(10_000)]
    public async Task BindOnAPortInUseNamesTheEndpointAndEaddrinuse(CancellationToken ct)
    {
        await using FdListener first = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var ex = Assert.Throws<PipeTransportException>(() => FdListener.Bind(first.LocalEndPoint));
        Assert.That(ex!.Errno, Is.EqualTo(Errno.EADDRINUSE));
        Assert.That(ex.Message, Does.Contain($"tcp:{first.LocalEndPoint}").And.Contain("EADDRINUSE"));
    }

    [Test, CancelAfter(10_000)]
    public async Task BindOnAUnixPathInUseIsEaddrinuseAndLeavesTheLiveSocketAlone(CancellationToken ct)
    {
        string path = Path.Combine(_dir, "live");
        await using FdListener first = FdListener.Bind(new UnixDomainSocketEndPoint(path));
        var ex = Assert.Throws<PipeTransportException>(() => FdListener.Bind(new UnixDomainSocketEndPoint(path)));
        Assert.That(ex!.Errno, Is.EqualTo(Errno.EADDRINUSE));
        Assert.That(ex.Message, Does.Contain(path));

        // The first listener still works.
        await using FdConnection client = await FdConnection.ConnectAsync(new UnixDomainSocketEndPoint(path), null, ct);
        await using FdConnection? server = await first.AcceptAsync(ct);
        Assert.That(server, Is.Not.Null);
    }

    [Test, CancelAfter(10_000)]
    public void UnixPathLongerThan107BytesIsEnametoolong()
    {
        // sun_path holds 107 bytes and a NUL. .NET's endpoint type already refuses longer paths when it
        // is constructed (naming the path); our encoder, used for every endpoint, refuses them too.
        string path = "/tmp/" + new string('p', 103);
        Assert.That(() => new UnixDomainSocketEndPoint(path), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains(path));
        var ex = Assert.Throws<PipeTransportException>(() => Endpoints.SocketAddresses.UnixToNative(path));
        Assert.That(ex!.Errno, Is.EqualTo(Errno.ENAMETOOLONG));
        Assert.That(ex.Message, Does.Contain(path));
        string multiByte = "/tmp/" + new string('\u00e9', 52); // 57 characters, 109 bytes in UTF-8
        Assert.That(Assert.Throws<PipeTransportException>(() => Endpoints.SocketAddresses.UnixToNative(multiByte))!.Errno, Is.EqualTo(Errno.ENAMETOOLONG));
        Assert.That(Endpoints.SocketAddresses.UnixToNative("/tmp/" + new string('p', 102)), Has.Length.EqualTo(2 + 108));
    }

    [Test, CancelAfter(10_000)]
    public void BindWhereTheKernelRefusesNamesPathAndErrno()
    {
        // Root passes every permission check on ordinary directories; sysfs refuses new files to anyone.
        var ex = Assert.Throws<PipeTransportException>(() => FdListener.Bind(new UnixDomainSocketEndPoint("/sys/pipetransport.sock")));
        Assert.That(ex!.Errno, Is.AnyOf(Errno.EPERM, Errno.EACCES));
        Assert.That(ex.Message, Does.Contain("/sys/pipetransport.sock"));

        var missing = Assert.Throws<PipeTransportException>(() => FdListener.Bind(new UnixDomainSocketEndPoint(Path.Combine(_dir, "no", "such", "dir"))));
        Assert.That(missing!.Errno, Is.EqualTo(Errno.ENOENT));
    }

    [Test, CancelAfter(10_000)]
    public async Task ConnectToAClosedPortIsEconnrefusedAndLeavesNoFd(CancellationToken ct)
    {
        int port;
        await using (FdListener probe = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0)))
        {
            port = ((IPEndPoint)probe.LocalEndPoint).Port;
        }

        int before = TestProcess.OpenFdCount();
        var ex = Assert.ThrowsAsync<PipeTransportException>(async () => await FdConnection.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), null, ct));
        Assert.That(ex!.Errno, Is.EqualTo(Errno.ECONNREFUSED));
        Assert.That(ex.Message, Does.Contain($"127.0.0.1:{port}"));
        Assert.That(TestProcess.OpenFdCount(), Is.EqualTo(before));
    }

    [Test, CancelAfter(10_000)]
    public void ConnectToAMissingUnixPathIsEnoent(CancellationToken ct)
    {
        string path = Path.Combine(_dir, "nobody-here");
        int before = TestProcess.OpenFdCount();
        var ex = Assert.ThrowsAsync<PipeTransportException>(async () => await FdConnection.ConnectAsync(new UnixDomainSocketEndPoint(path), null, ct));
        Assert.That(ex!.Errno, Is.EqualTo(Errno.ENOENT));
        Assert.That(ex.Message, Does.Contain(path));
        Assert.That(TestProcess.OpenFdCount(), Is.EqualTo(before));
    }

    [Test, CancelAfter(20_000)]
    public async Task CancelledMidConnectThrowsAndLeavesNoFd(CancellationToken ct)
    {
        // A listener that never accepts, with its backlog filled: the next SYN is dropped and the
        // connect stays in progress (the kernel retransmits) until it is cancelled.
        await using FdListener listener = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), new FdListenerOptions { Backlog = 1 });
        var fillers = new List<FdConnection>();
        bool cancelledMidConnect = false;
        for (int i = 0; i < 16 && !cancelledMidConnect; i++)
        {
            int before = TestProcess.OpenFdCount();
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            Task<FdConnection> attempt = FdConnection.ConnectAsync(listener.LocalEndPoint, null, cts.Token).AsTask();
            if (await Task.WhenAny(attempt, Task.Delay(300, ct)) != attempt)
            {
                // Most likely stuck behind the full backlog. Cancel it; one that completed just before
                // the cancellation (a busy machine) was a filler after all, and the next one is tried.
                cts.Cancel();
                try
                {
                    await attempt;
                }
                catch (OperationCanceledException)
                {
                    cancelledMidConnect = true;
                    Assert.That(TestProcess.OpenFdCount(), Is.EqualTo(before), "the cancelled connect's socket is closed");
                    break;
                }
            }

            fillers.Add(await attempt);
        }

        Assert.That(cancelledMidConnect, Is.True, "some connect must stay in progress once the backlog is full, and be cancelled");
        foreach (FdConnection c in fillers)
        {
            await c.DisposeAsync();
        }
    }

    [Test, CancelAfter(20_000)]
    public async Task APeerResetMidTransferSurfacesAsConnectionResetOnBothPipes(CancellationToken ct)
    {
        await using FdListener listener = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        using var peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await peer.ConnectAsync(listener.LocalEndPoint, ct);
        await using FdConnection server = (await listener.AcceptAsync(ct))!;

        await peer.SendAsync(new byte[100_000], ct);
        ReadResult some = await server.Input.ReadAsync(ct);
        server.Input.AdvanceTo(some.Buffer.End);

        // Linger 0 then close: the kernel sends RST instead of FIN.
        peer.LingerState = new LingerOption(true, 0);
        peer.Close();

        var inputError = Assert.ThrowsAsync<FdConnectionResetException>(async () =>
        {
            while (true)
            {
                ReadResult r = await server.Input.ReadAsync(ct);
                server.Input.AdvanceTo(r.Buffer.End);
                Assert.That(r.IsCompleted, Is.False, "a reset is not a clean EOF");
            }
        });
        Assert.That(inputError!.Errno, Is.EqualTo(Errno.ECONNRESET));

        var outputError = Assert.ThrowsAsync<FdConnectionResetException>(async () =>
        {
            for (int i = 0; i < 100; i++)
            {
                await server.Output.WriteAsync(new byte[65536], ct);
            }
        });
        Assert.That(outputError!.Errno, Is.AnyOf(Errno.EPIPE, Errno.ECONNRESET));
    }

    [Test, CancelAfter(20_000)]
    public async Task APeerThatStopsReadingHoldsBackOurFlush(CancellationToken ct)
    {
        await using FdListener listener = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        using var peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await peer.ConnectAsync(listener.LocalEndPoint, ct);
        await using FdConnection server = (await listener.AcceptAsync(ct))!;

        long written = 0;
        Task writer = Task.Run(async () =>
        {
            byte[] chunk = new byte[64 * 1024];
            for (int i = 0; i < 1024; i++)
            {
                await server.Output.WriteAsync(chunk, ct);
                Interlocked.Add(ref written, chunk.Length);
            }
        }, ct);

        // Wait until the writer makes no progress any more (kernel buffers full, flush pending).
        long last = -1;
        for (int stable = 0; stable < 3;)
        {
            await Task.Delay(50, ct);
            long now = Interlocked.Read(ref written);
            stable = now == last ? stable + 1 : 0;
            last = now;
        }

        Assert.That(writer.IsCompleted, Is.False);
        Assert.That(last, Is.LessThan(64L << 20), "64 MiB cannot fit in socket buffers: the flush must be held back");

        // The peer reads again: everything arrives.
        byte[] buffer = new byte[1 << 20];
        long received = 0;
        while (received < 64L << 20)
        {
            received += await peer.ReceiveAsync(buffer, ct);
        }

        await writer;
        Assert.That(received, Is.EqualTo(64L << 20));
    }

    [Test, CancelAfter(120_000)]
    public async Task TenThousandConnectCloseCyclesLeaveNoFd(CancellationToken ct)
    {
        await using FdListener listener = FdListener.Bind(new UnixDomainSocketEndPoint(Path.Combine(_dir, "cycles")));
        await using FdListener tcp = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        int before = TestProcess.OpenFdCount();
        for (int i = 0; i < 10_000; i++)
        {
            FdListener l = i % 2 == 0 ? listener : tcp;
            Task<FdConnection> client = FdConnection.ConnectAsync(l.LocalEndPoint, null, ct).AsTask();
            FdConnection server = (await l.AcceptAsync(ct))!;
            FdConnection c = await client;
            await c.DisposeAsync();
            await server.DisposeAsync();
        }

        Assert.That(TestProcess.OpenFdCount(), Is.EqualTo(before));
    }

    [Test, CancelAfter(10_000)]
    public async Task UnixPeerCredentialsNameTheConnectingProcess(CancellationToken ct)
    {
        string path = Path.Combine(_dir, "creds");
        await using FdListener listener = FdListener.Bind(new UnixDomainSocketEndPoint(path));
        await using FdConnection client = await FdConnection.ConnectAsync(listener.LocalEndPoint, null, ct);
        await using FdConnection server = (await listener.AcceptAsync(ct))!;
        Assert.That(server.PeerCredentials, Is.EqualTo(new PeerCredentials(Environment.ProcessId, Syscall.geteuid(), Syscall.getegid())));

        await using FdListener tcp = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        await using FdConnection tcpClient = await FdConnection.ConnectAsync(tcp.LocalEndPoint, null, ct);
        Assert.That(tcpClient.PeerCredentials, Is.Null);
    }

    [Test, CancelAfter(10_000)]
    public async Task UnixSocketFileHasTheModeAndIsRemovedOnDispose(CancellationToken ct)
    {
        string path = Path.Combine(_dir, "mode");
        FdListener listener = FdListener.Bind(new UnixDomainSocketEndPoint(path), new FdListenerOptions { UnixSocketMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupWrite });
        Assert.That(File.GetUnixFileMode(path), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupWrite));
        await listener.DisposeAsync();
        Assert.That(File.Exists(path), Is.False);

        await using FdListener defaults = FdListener.Bind(new UnixDomainSocketEndPoint(path));
        Assert.That(File.GetUnixFileMode(path), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
    }

    [Test, CancelAfter(10_000)]
    public async Task AnAdoptedListeningSocketBecomesCloseOnExecAndServes(CancellationToken ct)
    {
        // What systemd socket activation hands over: bound and listening, blocking, inherited across exec.
        string path = Path.Combine(_dir, "activated");
        int fd = Interop.Sys.Socket(Interop.Libc.AF_UNIX);
        var handle = new SafeFdHandle(fd);
        Assert.That(Interop.Sys.Bind(fd, Endpoints.SocketAddresses.UnixToNative(path)), Is.Zero);
        Assert.That(Interop.Sys.Listen(fd, 16), Is.Zero);
        Assert.That(Interop.Sys.Fcntl(fd, Interop.Libc.F_SETFD, 0), Is.Zero);
        Assert.That(Interop.Sys.SetNonBlocking(fd, false), Is.EqualTo(1));

        FdListener listener = FdListener.FromHandle(handle);
        Assert.That(Interop.Sys.Fcntl(fd, Interop.Libc.F_GETFD, 0) & Interop.Libc.FD_CLOEXEC, Is.EqualTo(Interop.Libc.FD_CLOEXEC));
        Assert.That(Interop.Sys.Fcntl(fd, Interop.Libc.F_GETFL, 0) & Interop.Libc.O_NONBLOCK, Is.EqualTo(Interop.Libc.O_NONBLOCK));
        Assert.That(listener.LocalEndPoint.ToString(), Is.EqualTo(path));

        await using (FdConnection client = await FdConnection.ConnectAsync(new UnixDomainSocketEndPoint(path), null, ct))
        await using (FdConnection server = (await listener.AcceptAsync(ct))!)
        {
            await client.Output.WriteAsync("ping"u8.ToArray(), ct);
            await client.Output.CompleteAsync();
            ReadResult read;
            while (!(read = await server.Input.ReadAsync(ct)).IsCompleted)
            {
                server.Input.AdvanceTo(read.Buffer.Start, read.Buffer.End);
            }

            Assert.That(read.Buffer.ToArray(), Is.EqualTo("ping"u8.ToArray()));
        }

        await listener.DisposeAsync();
        Assert.That(handle.IsClosed, Is.True, "the listener owns the fd");
        Assert.That(File.Exists(path), Is.True, "the socket file belongs to whoever bound it");
    }

    [Test, CancelAfter(10_000)]
    public void AdoptingASocketThatDoesNotListenIsAnArgumentException(CancellationToken ct)
    {
        int fd = Interop.Sys.Socket(Interop.Libc.AF_INET);
        var handle = new SafeFdHandle(fd);

        var ex = Assert.Throws<ArgumentException>(() => FdListener.FromHandle(handle));
        Assert.That(ex!.Message, Does.Contain("is not a listening socket"));
        Assert.That(handle.IsClosed, Is.True, "adoption takes the fd, also when it fails");
    }

    [Test, CancelAfter(10_000)]
    public void AnUnknownGroupFailsBeforeAnythingOnDiskIsTouched(CancellationToken ct)
    {
        // A dead server's socket file: even the stale-file cleanup waits until the names are resolved.
        string path = Path.Combine(_dir, "stale");
        int fd = Interop.Sys.Socket(Interop.Libc.AF_UNIX);
        using (var crashed = new SafeFdHandle(fd))
        {
            Assert.That(Interop.Sys.Bind(fd, Endpoints.SocketAddresses.UnixToNative(path)), Is.Zero);
            Assert.That(Interop.Sys.Listen(fd, 1), Is.Zero);
        }

        Assert.That(Syscall.stat(path, out Stat before), Is.Zero);
        var ex = Assert.Throws<PipeTransportException>(() =>
            FdListener.Bind(new UnixDomainSocketEndPoint(path), new FdListenerOptions { UnixSocketGroup = "no-such-group-pt" }));

        Assert.That(ex!.Errno, Is.EqualTo(Errno.EINVAL));
        Assert.That(ex.Message, Is.EqualTo($"chown :no-such-group-pt {path}: EINVAL (no such group 'no-such-group-pt')"));
        Assert.That(Syscall.stat(path, out Stat after), Is.Zero);
        Assert.That(after.st_ino, Is.EqualTo(before.st_ino));
    }

    [Test, CancelAfter(10_000)]
    public async Task UnixSocketFileGetsTheGroupByNameOrId(CancellationToken ct)
    {
        // Our own group: the one any process may give its files to.
        uint gid = Syscall.getegid();
        string name = Syscall.getgrgid(gid)!.gr_name;
        foreach (string group in new[] { name, gid.ToString(System.Globalization.CultureInfo.InvariantCulture) })
        {
            string path = Path.Combine(_dir, "group-" + group);
            await using FdListener listener = FdListener.Bind(new UnixDomainSocketEndPoint(path), new FdListenerOptions { UnixSocketGroup = group });
            Assert.That(Syscall.stat(path, out Stat st), Is.Zero);
            Assert.That(st.st_gid, Is.EqualTo(gid), group);
        }
    }

    [Test, CancelAfter(10_000)]
    public void AChownTheKernelRefusesNamesThePathTheOwnerAndErrno(CancellationToken ct)
    {
        if (Syscall.geteuid() == 0)
        {
            Assert.Ignore("root may give its files to anyone");
        }

        string path = Path.Combine(_dir, "refused");
        var ex = Assert.Throws<PipeTransportException>(() =>
            FdListener.Bind(new UnixDomainSocketEndPoint(path), new FdListenerOptions { UnixSocketOwner = "0" }));
        Assert.That(ex!.Errno, Is.EqualTo(Errno.EPERM));
        Assert.That(ex.Message, Does.StartWith($"chown 0 {path}: EPERM"));
        Assert.That(File.Exists(path), Is.False, "the socket file is removed again");
    }

    [Test, CancelAfter(10_000)]
    public async Task AStaleSocketFileIsReplaced(CancellationToken ct)
    {
        string path = Path.Combine(_dir, "stale");
        // A server that died: its socket was bound and listening, then closed without unlinking the file.
        int fd = Interop.Sys.Socket(Interop.Libc.AF_UNIX);
        using (var crashed = new SafeFdHandle(fd))
        {
            Assert.That(Interop.Sys.Bind(fd, Endpoints.SocketAddresses.UnixToNative(path)), Is.Zero);
            Assert.That(Interop.Sys.Listen(fd, 1), Is.Zero);
        }

        Assert.That(File.Exists(path), Is.True);
        await using FdListener listener = FdListener.Bind(new UnixDomainSocketEndPoint(path));
        await using FdConnection client = await FdConnection.ConnectAsync(listener.LocalEndPoint, null, ct);
        await using FdConnection? server = await listener.AcceptAsync(ct);
        Assert.That(server, Is.Not.Null);
    }

    [Test, CancelAfter(10_000)]
    public async Task AbstractNamesIpv6AndDualStackWork(CancellationToken ct)
    {
        var abstractName = new UnixDomainSocketEndPoint("@pipetransport-test-" + Environment.ProcessId);
        await using (FdListener listener = FdListener.Bind(abstractName))
        {
            await using FdConnection client = await FdConnection.ConnectAsync(abstractName, null, ct);
            await using FdConnection? server = await listener.AcceptAsync(ct);
            Assert.That(server, Is.Not.Null);
        }

        await using FdListener dual = FdListener.Bind(new IPEndPoint(IPAddress.IPv6Any, 0));
        int port = ((IPEndPoint)dual.LocalEndPoint).Port;
        await using FdConnection v4 = await FdConnection.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), null, ct);
        await using FdConnection? s4 = await dual.AcceptAsync(ct);
        Assert.That(((IPEndPoint)s4!.RemoteEndPoint!).Address.IsIPv4MappedToIPv6, Is.True);
        await using FdConnection v6 = await FdConnection.ConnectAsync(new IPEndPoint(IPAddress.IPv6Loopback, port), null, ct);
        await using FdConnection? s6 = await dual.AcceptAsync(ct);
        Assert.That(((IPEndPoint)s6!.RemoteEndPoint!).Address, Is.EqualTo(IPAddress.IPv6Loopback));
    }

    [Test, CancelAfter(10_000)]
    public async Task DisposingTheListenerWakesAPendingAccept(CancellationToken ct)
    {
        FdListener listener = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        ValueTask<FdConnection?> pending = listener.AcceptAsync(ct);
        await listener.DisposeAsync();
        Assert.That(await pending, Is.Null);
        Assert.That(await listener.AcceptAsync(ct), Is.Null);
    }

    [TestCase(false), TestCase(true)]
    [CancelAfter(20_000)]
    public async Task ConnectionsSpreadOverEveryReactor(bool reusePort, CancellationToken ct)
    {
        using var group = new ReactorGroup(2);
        var options = new FdConnectionOptions { ReactorGroup = group };
        await using FdListener listener = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0), new FdListenerOptions { ConnectionOptions = options, ReusePort = reusePort });
        var connections = new List<FdConnection>();
        for (int i = 0; i < 8; i++)
        {
            Task<FdConnection> client = FdConnection.ConnectAsync(listener.LocalEndPoint, null, ct).AsTask();
            connections.Add((await listener.AcceptAsync(ct))!);
            connections.Add(await client);
        }

        Assert.That(group.RegisteredCounts, Has.All.GreaterThan(1), "each reactor carries some of the accepted connections");
        foreach (FdConnection c in connections)
        {
            await c.DisposeAsync();
        }
    }

    [TestCase(true), TestCase(false)]
    [CancelAfter(20_000)]
    public async Task ReactorsThatDoNotYieldBeforeWaitingServeTheSameExchange(bool yieldBeforeWaiting, CancellationToken ct)
    {
        using var group = new ReactorGroup(1, yieldBeforeWaiting);
        Assert.That(group.YieldsBeforeWaiting, Is.EqualTo(yieldBeforeWaiting));
        (FdConnection a, FdConnection b) = FdConnection.CreatePair(new FdConnectionOptions { ReactorGroup = group });
        await using (a)
        await using (b)
        {
            // Many small request/response exchanges, then a half-close: every wake-up path of the
            // reactor (block, and yield then look again) carries them.
            byte[] message = new byte[100];
            for (int i = 0; i < 2_000; i++)
            {
                message[0] = (byte)i;
                await a.Output.WriteAsync(message, ct);
                ReadResult request = await b.Input.ReadAtLeastAsync(message.Length, ct);
                byte first = request.Buffer.FirstSpan[0];
                b.Input.AdvanceTo(request.Buffer.GetPosition(message.Length));
                await b.Output.WriteAsync(new[] { first }, ct);
                ReadResult reply = await a.Input.ReadAtLeastAsync(1, ct);
                Assert.That(reply.Buffer.FirstSpan[0], Is.EqualTo((byte)i));
                a.Input.AdvanceTo(reply.Buffer.GetPosition(1));
            }

            await a.Output.CompleteAsync();
            ReadResult end = await b.Input.ReadAsync(ct);
            Assert.That(end.IsCompleted && end.Buffer.IsEmpty, Is.True, "the half-close reaches the peer as EOF");
            b.Input.AdvanceTo(end.Buffer.End);
        }
    }
}
