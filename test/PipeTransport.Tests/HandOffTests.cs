using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Threading.Channels;
using Mono.Unix.Native;
using NUnit.Framework;
using PipeTransport.HandOff;
using PipeTransport.Interop;
using static PipeTransport.Tests.FdTestHelpers;

namespace PipeTransport.Tests;

/// <summary>
/// Zero-downtime hand-off: listeners and FIFO readers go from one process to its successor (real child
/// processes, see <see cref="HandOffChildren"/>) while a client keeps connecting or a producer keeps
/// writing; refusals, a successor killed in the middle, and bad input.
/// </summary>
[NonParallelizable] // counts /proc/self/fd, runs many processes
public sealed class HandOffTests
{
    private const long GiB = 1L << 30;

    [Test, CancelAfter(180_000)]
    public async Task Tcp_and_unix_listeners_are_handed_off_while_a_client_keeps_connecting(CancellationToken ct)
    {
        await ListenerHandOffsAsync(generations: 4, killedSuccessorAt: -1, ct);
    }

    [Test, CancelAfter(180_000)]
    public async Task A_successor_killed_after_the_offer_leaves_the_listeners_served_and_a_later_hand_off_works(CancellationToken ct)
    {
        await ListenerHandOffsAsync(generations: 3, killedSuccessorAt: 1, ct);
    }

    [Test, CancelAfter(300_000)]
    public async Task A_fifo_consumer_restarted_10_times_loses_no_byte_of_1_GiB(CancellationToken ct)
    {
        await FifoHandOffsAsync(GiB, restarts: 10, killedSuccessorAt: -1, ct);
    }

    [Test, CancelAfter(180_000)]
    public async Task A_fifo_consumer_whose_successor_is_killed_after_the_offer_reads_on_and_a_later_hand_off_works(CancellationToken ct)
    {
        await FifoHandOffsAsync(256L << 20, restarts: 3, killedSuccessorAt: 1, ct);
    }

    [Test, CancelAfter(120_000)]
    public async Task A_process_of_another_user_is_refused_and_the_old_one_keeps_serving(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0x1C9); // 0711: others may reach the socket, not list
        string handOff = dir.File("handoff.sock");
        string unixPath = dir.File("echo.sock");
        await using Child old = Child.Start(ct, "handoff-listener", handOff, unixPath, "serve");
        int port = int.Parse((await old.WaitForAsync("serving ", ct))["serving ".Length..], System.Globalization.CultureInfo.InvariantCulture);

        // The socket is 0600: the kernel refuses the other user at connect.
        await using (Child nobody = Child.StartAs(65534, ct, "handoff-takeover", handOff))
        {
            string line = await nobody.WaitForAsync("error ", ct);
            Assert.That(line, Does.Contain("EACCES").And.Contain(handOff));
            Assert.That(await nobody.ExitCodeAsync(ct), Is.EqualTo(3));
        }

        // With a mode that lets anyone connect, SO_PEERCRED refuses it.
        File.SetUnixFileMode(handOff, (UnixFileMode)0x1B6);
        await using (Child nobody = Child.StartAs(65534, ct, "handoff-takeover", handOff))
        {
            string line = await nobody.WaitForAsync("error ", ct);
            Assert.That(line, Does.Contain("EPERM").And.Contain(handOff));
            Assert.That(await nobody.ExitCodeAsync(ct), Is.EqualTo(3));
        }

        Assert.That(await old.WaitForAsync("event Refused", ct), Does.Contain("refused uid 65534"));
        await EchoOnceAsync(new IPEndPoint(IPAddress.Loopback, port), 1, ct);
        await EchoOnceAsync(new UnixDomainSocketEndPoint(unixPath), 2, ct);

        // And the old one still hands off to its own user.
        File.SetUnixFileMode(handOff, (UnixFileMode)0x180);
        await using Child next = Child.Start(ct, "handoff-listener", handOff, unixPath, "serve");
        await next.WaitForAsync("serving ", ct);
        await old.WaitForAsync("handed-off", ct);
        Assert.That(await old.ExitCodeAsync(ct), Is.EqualTo(0));
        await EchoOnceAsync(new UnixDomainSocketEndPoint(unixPath), 3, ct);
    }

    /// <summary>The pause hook alone: bytes written while paused stay in the kernel; resume reads them, an end leaves them there.</summary>
    [Test, CancelAfter(20_000)]
    public async Task A_paused_input_reads_nothing_until_resumed_and_ends_where_it_stopped(CancellationToken ct)
    {
        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        using (w)
        {
            await using FdConnection connection = FdConnection.FromFd(r);
            WriteOnce(w.Fd, new byte[] { 1, 2, 3 });
            Assert.That(await ReadExactlyAsync(connection.Input, 3, ct), Is.EqualTo(new byte[] { 1, 2, 3 }));

            Task<ReadResult> pending = connection.Input.ReadAsync(ct).AsTask(); // the loop waits for the fd
            await connection.PauseInputAsync().WaitAsync(ct);
            WriteOnce(w.Fd, new byte[] { 4, 5 });
            using var dup = new SafeFdHandle(connection.DuplicateInputFd());
            Assert.That(Sys.BytesAvailable(LinuxSyscalls.Instance, dup.Fd), Is.EqualTo(2), "paused: the bytes stay in the pipe");
            connection.ResumeInput();
            ReadResult resumed = await pending.WaitAsync(ct);
            Assert.That(resumed.Buffer.ToArray(), Is.EqualTo(new byte[] { 4, 5 }));
            connection.Input.AdvanceTo(resumed.Buffer.End);

            await connection.PauseInputAsync().WaitAsync(ct);
            WriteOnce(w.Fd, new byte[] { 6, 7, 8 });
            connection.EndInputAtPause();
            Assert.That(await ReadToEndAsync(connection.Input, ct), Is.Empty, "Input ends where reading stopped");
            byte[] left = new byte[16];
            Assert.That((int)ReadOnce(dup.Fd, left), Is.EqualTo(3), "what came after the pause is the successor's");
        }
    }

    [Test, CancelAfter(20_000)]
    public async Task Disposing_a_paused_connection_does_not_wait_for_the_resume(CancellationToken ct)
    {
        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        using (w)
        {
            FdConnection connection = FdConnection.FromFd(r);
            WriteOnce(w.Fd, new byte[] { 1 });
            Assert.That(await ReadExactlyAsync(connection.Input, 1, ct), Has.Length.EqualTo(1));
            await connection.PauseInputAsync().WaitAsync(ct);
            WriteOnce(w.Fd, new byte[] { 2 });
            await connection.DisposeAsync().AsTask().WaitAsync(ct);
            ReadResult end = await connection.Input.ReadAsync(ct);
            Assert.That(end.IsCompleted, Is.True);
        }
    }

    [Test, CancelAfter(20_000)]
    public void Start_in_a_missing_directory_names_the_path_and_errno()
    {
        using var dir = new TempDirectory();
        string path = dir.File("missing/handoff.sock");
        PipeTransportException e = Assert.Throws<PipeTransportException>(() => HandOffServer.Start(path))!;
        Assert.That(e.Errno, Is.EqualTo(Errno.ENOENT));
        Assert.That(e.Message, Does.Contain(path).And.Contain("ENOENT"));
    }

    [Test, CancelAfter(20_000)]
    public async Task TakeOverAsync_finds_nothing_at_a_missing_path_or_a_socket_nobody_listens_on(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        Assert.That(await HandOffClient.TakeOverAsync(dir.File("missing"), ct), Is.Null);

        // A socket file whose server is gone (crashed: the file stays).
        string stale = dir.File("stale.sock");
        using (var socket = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified))
        {
            socket.Bind(new UnixDomainSocketEndPoint(stale));
        }

        Assert.That(await HandOffClient.TakeOverAsync(stale, ct), Is.Null);
    }

    [Test, CancelAfter(20_000)]
    public async Task TakeOverAsync_on_a_regular_file_or_a_path_too_long_is_a_typed_error(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string file = dir.File("regular");
        await File.WriteAllTextAsync(file, "x", ct);
        PipeTransportException e = Assert.ThrowsAsync<PipeTransportException>(() => HandOffClient.TakeOverAsync(file, ct))!;
        Assert.That(e.Errno, Is.EqualTo(Errno.ENOTSOCK));
        Assert.That(e.Message, Does.Contain(file));

        string tooLong = dir.File(new string('x', 200));
        e = Assert.ThrowsAsync<PipeTransportException>(() => HandOffClient.TakeOverAsync(tooLong, ct))!;
        Assert.That(e.Errno, Is.EqualTo(Errno.ENAMETOOLONG));
        e = Assert.Throws<PipeTransportException>(() => HandOffServer.Start(tooLong))!;
        Assert.That(e.Errno, Is.EqualTo(Errno.ENAMETOOLONG));
    }

    [Test, CancelAfter(30_000)]
    public async Task A_successor_that_stalls_past_the_timeout_is_dropped_and_the_fifo_is_read_again(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string fifoPath = dir.File("fifo");
        Fifo.Create(fifoPath);
        string handOff = dir.File("handoff.sock");
        var events = Channel.CreateUnbounded<HandOffEvent>();
        await using FdConnection reader = await FdConnection.OpenFifoAsync(fifoPath, fifoPath, new FdConnectionOptions { KeepFifoReaderOpen = true }, ct);
        await using HandOffServer server = HandOffServer.Start(handOff, new HandOffServerOptions { Timeout = TimeSpan.FromMilliseconds(300), Events = e => events.Writer.TryWrite(e) });
        server.Offer("fifo", reader);

        await using (HandOffTakeover stalled = (await HandOffClient.TakeOverAsync(handOff, ct))!)
        {
            // Paused: what is written now stays in the FIFO until the old one resumes.
            await reader.Output.WriteAsync(new byte[] { 1, 2, 3 }, ct);
            HandOffEvent aborted = await events.Reader.ReadAsync(ct);
            Assert.That(aborted.Kind, Is.EqualTo(HandOffEventKind.Aborted));
            Assert.That(aborted.Detail, Does.Contain("did not commit"));
            Assert.That(await ReadExactlyAsync(reader.Input, 3, ct), Is.EqualTo(new byte[] { 1, 2, 3 }));
            Assert.That(server.HandedOff.IsCompleted, Is.False);
            PipeTransportException e = Assert.ThrowsAsync<PipeTransportException>(() => stalled.CommitAsync(ct))!;
            Assert.That(e.Errno, Is.EqualTo(Errno.ECONNABORTED), "a dropped successor does not take over");
            Assert.That(() => stalled.TakeConnection("fifo"), Throws.InvalidOperationException);
        }

        // The next successor gets the reader.
        await using HandOffTakeover takeover = (await HandOffClient.TakeOverAsync(handOff, ct))!;
        await takeover.CommitAsync(ct);
        await server.HandedOff.WaitAsync(ct);
        Assert.That(takeover.TakeConnection("fifo"), Is.Not.Null);
    }

    [Test, CancelAfter(20_000)]
    public async Task A_malformed_answer_is_a_typed_error(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string path = dir.File("fake.sock");
        using var listening = new Socket(AddressFamily.Unix, SocketType.Seqpacket, ProtocolType.Unspecified);
        listening.Bind(new UnixDomainSocketEndPoint(path));
        listening.Listen();
        Task fake = Task.Run(async () =>
        {
            using Socket peer = await listening.AcceptAsync(ct);
            byte[] hello = new byte[16];
            await peer.ReceiveAsync(hello, ct);
            await peer.SendAsync(new byte[] { 2, 99 }, ct); // an offer of protocol version 99
            await peer.ReceiveAsync(hello, ct); // until the client closes
        }, ct);

        PipeTransportException e = Assert.ThrowsAsync<PipeTransportException>(() => HandOffClient.TakeOverAsync(path, ct))!;
        Assert.That(e.Errno, Is.EqualTo(Errno.EPROTO));
        Assert.That(e.Message, Does.Contain(path).And.Contain("version 99"));
        await fake; // ends when the client closed its socket
    }

    /// <summary>
    /// A hand-off inside one process: the fds received are close-on-exec, and once both sides are
    /// disposed the process has exactly the fds it had.
    /// </summary>
    [Test, CancelAfter(60_000)]
    public async Task Received_fds_are_close_on_exec_and_none_leaks(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string fifoPath = dir.File("fifo");
        Fifo.Create(fifoPath);
        await HandOffInProcessAsync(dir, fifoPath, 0, checkFds: false, ct); // warm-up: reactors, thread pool, timers
        int before = TestProcess.OpenFdCount();
        Dictionary<int, string> table = FdTable();
        for (int i = 1; i <= 3; i++)
        {
            await HandOffInProcessAsync(dir, fifoPath, i, checkFds: true, ct);
        }

        Assert.That(TestProcess.OpenFdCount(), Is.EqualTo(before), FdChanges(table));
    }

    private static async Task HandOffInProcessAsync(TempDirectory dir, string fifoPath, int round, bool checkFds, CancellationToken ct)
    {
        Dictionary<int, string> before = FdTable();
        string handOff = dir.File("handoff.sock");
        var events = Channel.CreateUnbounded<HandOffEvent>();
        await using FdListener listener = FdListener.Bind(new UnixDomainSocketEndPoint(dir.File("l.sock")));
        await using FdConnection reader = await FdConnection.OpenFifoAsync(fifoPath, fifoPath, new FdConnectionOptions { KeepFifoReaderOpen = true }, ct);
        await using HandOffServer server = HandOffServer.Start(handOff, new HandOffServerOptions { Events = e => events.Writer.TryWrite(e) });
        server.Offer("listener", listener);
        server.Offer("fifo", reader);

        await using HandOffTakeover takeover = (await HandOffClient.TakeOverAsync(handOff, ct))!;
        Assert.That(takeover.Names, Is.EquivalentTo(new[] { "listener", "fifo" }));
        Assert.That(() => takeover.TakeConnection("fifo"), Throws.InvalidOperationException, "FIFOs only after the commit");
        await using FdListener taken = takeover.TakeListener("listener")!;
        Assert.That(takeover.TakeListener("other"), Is.Null);
        await takeover.CommitAsync(ct);
        HandOffCommitted committed = await server.HandedOff.WaitAsync(ct);
        Assert.That(committed.Successor.ProcessId, Is.EqualTo(Environment.ProcessId));
        Assert.That((await events.Reader.ReadAsync(ct)).Kind, Is.EqualTo(HandOffEventKind.Committed));
        await using FdConnection fifo = takeover.TakeConnection("fifo")!;
        Assert.That(await listener.AcceptAsync(ct), Is.Null, "the old listener stopped accepting");

        // The old reader's Input ended at the pause point; the new one reads what comes now.
        ReadResult end = await reader.Input.ReadAsync(ct);
        Assert.That(end.IsCompleted && end.Buffer.IsEmpty, Is.True);
        reader.Input.AdvanceTo(end.Buffer.End);
        int w = Sys.Open(fifoPath, Libc.O_WRONLY | Libc.O_NONBLOCK);
        using (var writer = new SafeFdHandle(w))
        {
            WriteOnce(w, new byte[] { (byte)round, 2, 3 });
        }

        Assert.That(await ReadExactlyAsync(fifo.Input, 3, ct), Is.EqualTo(new byte[] { (byte)round, 2, 3 }));
        await using (FdConnection client = await FdConnection.ConnectAsync(new UnixDomainSocketEndPoint(dir.File("l.sock")), cancellationToken: ct))
        await using (FdConnection accepted = (await taken.AcceptAsync(ct))!)
        {
            Assert.That(accepted, Is.Not.Null);
        }

        if (checkFds)
        {
            foreach (int fd in new[] { FdOf(fifo.InputFd) })
            {
                Assert.That(Sys.Fcntl(fd, Libc.F_GETFD, 0) & Libc.FD_CLOEXEC, Is.EqualTo(Libc.FD_CLOEXEC), $"fd {fd} is close-on-exec");
            }

            foreach ((int fd, string target) in FdTable())
            {
                if (!before.ContainsKey(fd) && (target.StartsWith("socket:", StringComparison.Ordinal) || target.Contains("fifo", StringComparison.Ordinal)))
                {
                    Assert.That(Sys.Fcntl(fd, Libc.F_GETFD, 0) & Libc.FD_CLOEXEC, Is.EqualTo(Libc.FD_CLOEXEC), $"fd {fd} ({target}) is close-on-exec");
                }
            }
        }
    }

    private static async Task ListenerHandOffsAsync(int generations, int killedSuccessorAt, CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string handOff = dir.File("handoff.sock");
        string unixPath = dir.File("echo.sock");
        var children = new List<Child>();
        try
        {
            Child current = Child.Start(ct, "handoff-listener", handOff, unixPath, "serve");
            children.Add(current);
            int port = int.Parse((await current.WaitForAsync("serving ", ct))["serving ".Length..], System.Globalization.CultureInfo.InvariantCulture);
            var tcp = new IPEndPoint(IPAddress.Loopback, port);
            var unix = new UnixDomainSocketEndPoint(unixPath);

            using var stop = new CancellationTokenSource();
            long exchanges = 0;
            Task client = Task.Run(async () =>
            {
                for (long i = 0; !stop.IsCancellationRequested; i++)
                {
                    await EchoOnceAsync(i % 2 == 0 ? tcp : unix, i, ct);
                    Interlocked.Increment(ref exchanges);
                }
            }, ct);

            for (int g = 1; g < generations; g++)
            {
                await WaitForExchangesAsync(() => Interlocked.Read(ref exchanges), 200, client, ct);
                if (g == killedSuccessorAt)
                {
                    Child doomed = Child.Start(ct, "handoff-listener", handOff, unixPath, "stop-after-offer");
                    children.Add(doomed);
                    await doomed.WaitForAsync("offered tcp,unix", ct);
                    doomed.Kill();
                    await current.WaitForAsync("event Aborted", ct);
                    await WaitForExchangesAsync(() => Interlocked.Read(ref exchanges), 200, client, ct);
                }

                Child next = Child.Start(ct, "handoff-listener", handOff, unixPath, "serve");
                children.Add(next);
                Assert.That(await next.WaitForAsync("serving ", ct), Is.EqualTo($"serving {port}"), "the same sockets");
                await current.WaitForAsync("handed-off", ct);
                Assert.That(await current.ExitCodeAsync(ct), Is.EqualTo(0), current.Output);
                current = next;
            }

            await WaitForExchangesAsync(() => Interlocked.Read(ref exchanges), 200, client, ct);
            await stop.CancelAsync();
            await client; // throws the first failed exchange
            Assert.That(File.Exists(unixPath), Is.True, "the Unix socket file outlives the processes that handed it off");
            await EchoOnceAsync(unix, -1, ct);
            TestContext.Out.WriteLine($"{Interlocked.Read(ref exchanges)} exchanges over {generations} generations, none failed");
        }
        finally
        {
            foreach (Child child in children)
            {
                await child.DisposeAsync();
            }
        }
    }

    private static async Task WaitForExchangesAsync(Func<long> count, int more, Task client, CancellationToken ct)
    {
        long target = count() + more;
        while (count() < target)
        {
            if (client.IsCompleted)
            {
                await client; // it failed
            }

            await Task.Delay(5, ct);
        }
    }

    private static async Task EchoOnceAsync(EndPoint endPoint, long i, CancellationToken ct)
    {
        byte[] message = BitConverter.GetBytes(i);
        await using FdConnection connection = await FdConnection.ConnectAsync(endPoint, cancellationToken: ct);
        await connection.Output.WriteAsync(message, ct);
        await connection.Output.CompleteAsync();
        byte[] answer = await ReadToEndAsync(connection.Input, ct);
        Assert.That(answer, Is.EqualTo(message), $"answer from {endPoint}");
    }

    /// <summary>
    /// A producer writes <paramref name="size"/> deterministic bytes into a FIFO while consumers take
    /// over from each other; each consumer writes what it read to its stdout, and the test hashes the
    /// consumers' outputs in order.
    /// </summary>
    private static async Task FifoHandOffsAsync(long size, int restarts, int killedSuccessorAt, CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string handOff = dir.File("handoff.sock");
        string fifoPath = dir.File("fifo");
        Fifo.Create(fifoPath);
        var consumers = Channel.CreateUnbounded<Child>();
        var all = new List<Child>();
        try
        {
            Child current = Child.Start(ct, "handoff-fifo", handOff, fifoPath, "serve");
            all.Add(current);
            consumers.Writer.TryWrite(current);
            await current.WaitForAsync("serving", ct);

            long written = 0;
            Task<byte[]> producer = Task.Run(() => Produce(fifoPath, size, ref written, ct), ct);
            Task<(byte[] Hash, long Bytes, List<long> PerConsumer)> hasher = Task.Run(() => HashConsumersAsync(consumers.Reader, size, ct), ct);

            for (int r = 1; r <= restarts; r++)
            {
                // Each consumer reads a share before the next takes over.
                long target = size * r / (restarts + 1);
                while (Volatile.Read(ref written) < target && !producer.IsCompleted)
                {
                    await Task.Delay(2, ct);
                }

                if (r == killedSuccessorAt)
                {
                    Child doomed = Child.Start(ct, "handoff-fifo", handOff, fifoPath, "stop-after-offer");
                    all.Add(doomed);
                    await doomed.WaitForAsync("offered fifo", ct);
                    doomed.Kill();
                    await current.WaitForAsync("event Aborted", ct);
                }

                Child next = Child.Start(ct, "handoff-fifo", handOff, fifoPath, "serve");
                all.Add(next);
                consumers.Writer.TryWrite(next);
                await next.WaitForAsync("serving", ct);
                await current.WaitForAsync("handed-off", ct);
                current = next;
            }

            consumers.Writer.TryComplete();
            byte[] expected = await producer;
            (byte[] hash, long bytes, List<long> perConsumer) = await hasher;
            TestContext.Out.WriteLine($"bytes per consumer: {string.Join(" ", perConsumer)}");
            Assert.That(bytes, Is.EqualTo(size));
            Assert.That(Convert.ToHexString(hash), Is.EqualTo(Convert.ToHexString(expected)));
            Assert.That(perConsumer.Count(b => b > 0), Is.GreaterThan(restarts / 2), "the consumers shared the stream");
        }
        finally
        {
            foreach (Child child in all)
            {
                await child.DisposeAsync();
            }
        }
    }

    /// <summary>xorshift64 bytes into the FIFO (blocking writes), hashed as they go; returns the SHA-256.</summary>
    private static byte[] Produce(string fifoPath, long size, ref long written, CancellationToken ct)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var fifo = new FileStream(fifoPath, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0);
        byte[] chunk = new byte[256 * 1024];
        ulong state = 0x9E3779B97F4A7C15;
        while (Volatile.Read(ref written) < size)
        {
            ct.ThrowIfCancellationRequested();
            int n = (int)Math.Min(chunk.Length, size - written);
            Span<ulong> words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(chunk.AsSpan(0, n & ~7));
            for (int i = 0; i < words.Length; i++)
            {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                words[i] = state;
            }

            hash.AppendData(chunk, 0, n);
            fifo.Write(chunk, 0, n);
            Interlocked.Add(ref written, n);
        }

        return hash.GetHashAndReset();
    }

    /// <summary>Each consumer's stdout to its end, in order; the last one is read until the stream is complete.</summary>
    private static async Task<(byte[], long, List<long>)> HashConsumersAsync(ChannelReader<Child> consumers, long size, CancellationToken ct)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        byte[] buffer = new byte[256 * 1024];
        long total = 0;
        var perConsumer = new List<long>();
        await foreach (Child consumer in consumers.ReadAllAsync(ct))
        {
            long mine = 0;
            Stream stdout = consumer.Process.StandardOutput.BaseStream;
            while (total < size)
            {
                int n = await stdout.ReadAsync(buffer, ct);
                if (n == 0)
                {
                    break;
                }

                hash.AppendData(buffer, 0, n);
                total += n;
                mine += n;
            }

            perConsumer.Add(mine);
            if (total >= size)
            {
                break;
            }
        }

        return (hash.GetHashAndReset(), total, perConsumer);
    }

    /// <summary>A child program with its stderr lines; disposal kills it if it still runs.</summary>
    private sealed class Child : IAsyncDisposable
    {
        private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
        private readonly System.Text.StringBuilder _output = new();

        private Child(Process process)
        {
            Process = process;
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is null)
                {
                    _lines.Writer.TryComplete();
                    return;
                }

                lock (_output)
                {
                    _output.AppendLine(e.Data);
                }

                _lines.Writer.TryWrite(e.Data);
            };
            process.BeginErrorReadLine();
        }

        public Process Process { get; }

        public string Output
        {
            get
            {
                lock (_output)
                {
                    return _output.ToString();
                }
            }
        }

        public static Child Start(CancellationToken ct, params string[] args) =>
            new(TestProcess.Start("dotnet", [typeof(HandOffTests).Assembly.Location, "--child", .. args]));

        /// <summary>Runs the child as another user (no groups), as <c>setpriv</c> does.</summary>
        public static Child StartAs(int uid, CancellationToken ct, params string[] args) =>
            new(TestProcess.Start("setpriv", [$"--reuid={uid}", $"--regid={uid}", "--clear-groups", "env", "HOME=/tmp", "DOTNET_CLI_HOME=/tmp",
                "dotnet", typeof(HandOffTests).Assembly.Location, "--child", .. args]));

        /// <summary>The next line that starts with <paramref name="prefix"/> (lines before it are skipped).</summary>
        public async Task<string> WaitForAsync(string prefix, CancellationToken ct)
        {
            try
            {
                while (await _lines.Reader.WaitToReadAsync(ct))
                {
                    while (_lines.Reader.TryRead(out string? line))
                    {
                        if (line.StartsWith(prefix, StringComparison.Ordinal))
                        {
                            return line;
                        }
                    }
                }
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"no '{prefix}' line from the child; it said:\n{Output}");
            }

            throw new InvalidOperationException($"the child ended without a '{prefix}' line; it said:\n{Output}");
        }

        public async Task<int> ExitCodeAsync(CancellationToken ct)
        {
            await Process.WaitForExitAsync(ct);
            return Process.ExitCode;
        }

        public void Kill() => Process.Kill(); // SIGKILL

        public async ValueTask DisposeAsync()
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
            }

            await Process.WaitForExitAsync();
            Process.StandardInput.BaseStream.Dispose();
            Process.StandardOutput.BaseStream.Dispose();
            Process.Dispose(); // stderr is read line by line (asynchronously): disposal closes it
        }
    }
}
