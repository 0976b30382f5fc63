using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Runtime.InteropServices;
using System.Net.Sockets;
using NUnit.Framework;
using static PipeTransport.Tests.FdTestHelpers;

namespace PipeTransport.Tests;

/// <summary>
/// fd hygiene: 1,000 open/close cycles of each kind leave the process with exactly the fds it had,
/// and a child process started while connections are open inherits none of them (all O_CLOEXEC).
/// </summary>
/// <remarks>
/// Each cycle ends one of three ways, in turn: an exchange with half-close both ways (each side
/// completes Output, the other reads to EOF), disposal while both sides wait in Input.ReadAsync,
/// and Abort followed by disposal.
/// </remarks>
[NonParallelizable] // counts /proc/self/fd
public class FdHygieneTests
{
    private const int Cycles = 1000;
    private const int WarmUpCycles = 30;

    private delegate Task<(FdConnection, FdConnection)> Opener(int cycle, CancellationToken ct);

    [Test, CancelAfter(60_000)]
    public async Task CreatePair_cycles_leave_no_fd_behind(CancellationToken ct)
    {
        await AssertCyclesLeaveNoFdsAsync((_, _) => Task.FromResult(FdConnection.CreatePair()), ct);
    }

    [Test, CancelAfter(60_000)]
    public async Task FromFds_over_anonymous_pipes_cycles_leave_no_fd_behind(CancellationToken ct)
    {
        await AssertCyclesLeaveNoFdsAsync((_, _) =>
        {
            (SafeFdHandle r1, SafeFdHandle w1) = Pipe();
            (SafeFdHandle r2, SafeFdHandle w2) = Pipe();
            return Task.FromResult((FdConnection.FromFds(r1, w2), FdConnection.FromFds(r2, w1)));
        }, ct);
    }

    [Test, CancelAfter(60_000)]
    public async Task OpenFifoAsync_pair_cycles_leave_no_fd_behind(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string x = dir.File("x");
        string y = dir.File("y");
        Fifo.Create(x);
        Fifo.Create(y);

        // A standing extra reader of y (it never reads, so it takes no data) lets both opens find
        // their reader at once; the waiting open is cycled below, fewer times, as it costs ~5 ms
        // (closing its inotify instance waits for the kernel).
        using var standingReader = new SafeFdHandle(Interop.Sys.Open(y, Interop.Libc.O_RDONLY | Interop.Libc.O_NONBLOCK));
        Assert.That(standingReader.IsInvalid, Is.False);
        await AssertCyclesLeaveNoFdsAsync(FifoPairOpener(x, y, standingReader.Fd), ct);
    }

    [Test, CancelAfter(60_000)]
    public async Task OpenFifoAsync_pairs_that_wait_for_each_other_leave_no_fd_behind(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string x = dir.File("x");
        string y = dir.File("y");
        Fifo.Create(x);
        Fifo.Create(y);
        await AssertCyclesLeaveNoFdsAsync(FifoPairOpener(x, y), ct, cycles: 150);
    }

    private static Opener FifoPairOpener(string x, string y, int standingReader = -1)
    {
        var keepReaderOpen = new FdConnectionOptions { KeepFifoReaderOpen = true };
        return async (cycle, token) =>
        {
            if (standingReader >= 0)
            {
                Drain(standingReader); // what an aborted cycle left in y: the FIFO outlives it here
            }

            // A spare write end (KeepFifoReaderOpen) must be closed too; Input then has no EOF, so
            // only the cycles that end by disposal or abort use it.
            FdConnectionOptions? options = cycle % 3 == 0 ? null : keepReaderOpen;
            Task<FdConnection> first = FdConnection.OpenFifoAsync(x, y, options, token).AsTask();
            FdConnection second = await FdConnection.OpenFifoAsync(y, x, null, token);
            return (await first, second);
        };
    }

    [Test, CancelAfter(60_000)]
    public async Task Unix_socket_connect_accept_cycles_leave_no_fd_behind(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        await AssertListenerCyclesLeaveNoFdsAsync(new UnixDomainSocketEndPoint(dir.File("s")), ct);
    }

    [Test, CancelAfter(60_000)]
    public async Task Tcp_connect_accept_cycles_leave_no_fd_behind(CancellationToken ct)
    {
        await AssertListenerCyclesLeaveNoFdsAsync(new IPEndPoint(IPAddress.Loopback, 0), ct);
    }

    [Test, CancelAfter(60_000)]
    public async Task RawFd_create_wait_dispose_cycles_leave_no_fd_behind(CancellationToken ct)
    {
        async Task CycleAsync(int cycle)
        {
            (SafeFdHandle r, SafeFdHandle w) = Pipe();
            using (r)
            using (w)
            {
                RawFd raw = RawFd.Create(cycle % 2 == 0 ? r : w);
                if (cycle % 2 == 0)
                {
                    // A read wait that the disposal wakes.
                    ValueTask wait = raw.ReadAsync(fd => ReadOnce(fd, new byte[1]) != -Interop.Libc.EAGAIN, ct);
                    raw.Dispose();
                    Assert.That(async () => await wait, Throws.InstanceOf<ObjectDisposedException>());
                }
                else
                {
                    await raw.WriteAsync(fd => WriteOnce(fd, new byte[1]) > 0, ct);
                    raw.Dispose();
                }
            }
        }

        for (int i = 0; i < WarmUpCycles; i++)
        {
            await CycleAsync(i);
        }

        GC.Collect();
        GC.WaitForPendingFinalizers();
        Dictionary<int, string> table = FdTable();
        int before = OpenFdCount();
        for (int i = 0; i < Cycles; i++)
        {
            await CycleAsync(i);
        }

        Assert.That(OpenFdCount(), Is.EqualTo(before), () => $"fds changed: {FdChanges(table)}");
    }

    /// <summary>Regular files go through blocking calls on pool threads; their fds must be closed all the same.</summary>
    [Test, CancelAfter(60_000)]
    public async Task Regular_file_connection_cycles_leave_no_fd_behind(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        string source = dir.File("in");
        File.WriteAllBytes(source, RandomBytes(10_000, 5));
        await AssertCyclesLeaveNoFdsAsync(async (cycle, token) =>
        {
            await using FdConnection file = FdConnection.FromFds(
                File.OpenHandle(source, FileMode.Open, FileAccess.Read),
                File.OpenHandle(dir.File($"out{cycle % 2}"), FileMode.Create, FileAccess.Write));
            if (cycle % 2 == 0)
            {
                await file.Input.CopyToAsync(file.Output, token);
                await file.Output.CompleteAsync();
            }
            else
            {
                ReadResult result = await file.Input.ReadAsync(token);
                file.Input.AdvanceTo(result.Buffer.Start); // disposal with unread data
            }

            return FdConnection.CreatePair(); // the shared cycle below runs on a socketpair as well
        }, ct, cycles: 300);
    }

    /// <summary>
    /// stdin/stdout-style adoption: the handle does not own the fd (another process may share its
    /// open file description), so disposal leaves the fd open and puts back the blocking mode the
    /// transport changed (O_NONBLOCK lives in the shared description, not in our fd).
    /// </summary>
    [Test, CancelAfter(10_000)]
    public async Task A_borrowed_fd_is_left_open_with_its_blocking_mode_restored([Values] bool used, CancellationToken ct)
    {
        (SafeFdHandle r, SafeFdHandle w) = Pipe();
        (SafeFdHandle r2, SafeFdHandle w2) = Pipe();
        using (r)
        using (w)
        using (r2)
        using (w2)
        {
            Assert.That(Interop.Sys.SetNonBlocking(r.Fd, false), Is.EqualTo(1));
            Assert.That(Interop.Sys.SetNonBlocking(w2.Fd, false), Is.EqualTo(1));
            var borrowedIn = new SafeFdHandle(r.Fd, ownsHandle: false);
            var borrowedOut = new SafeFdHandle(w2.Fd, ownsHandle: false);

            await using (FdConnection connection = FdConnection.FromFds(borrowedIn, borrowedOut))
            {
                Assert.That(IsNonBlocking(r.Fd) && IsNonBlocking(w2.Fd), Is.True, "the transport runs them non-blocking");
                if (used)
                {
                    Assert.That(WriteOnce(w.Fd, "in"u8.ToArray()), Is.EqualTo((nint)2));
                    Assert.That(await ReadExactlyAsync(connection.Input, 2, ct), Is.EqualTo("in"u8.ToArray()));
                    await connection.Output.WriteAsync("out"u8.ToArray(), ct);
                }
            }

            Assert.That(Interop.Sys.CheckOpen(r.Fd), Is.GreaterThanOrEqualTo(0), "the borrowed input fd is still open");
            Assert.That(Interop.Sys.CheckOpen(w2.Fd), Is.GreaterThanOrEqualTo(0), "the borrowed output fd is still open");
            Assert.That(IsNonBlocking(r.Fd), Is.False, "blocking mode restored on the input");
            Assert.That(IsNonBlocking(w2.Fd), Is.False, "blocking mode restored on the output");
            if (used)
            {
                var buffer = new byte[3];
                Assert.That(ReadOnce(r2.Fd, buffer), Is.EqualTo((nint)3));
                Assert.That(buffer, Is.EqualTo("out"u8.ToArray()));
            }
        }
    }

    private static bool IsNonBlocking(int fd)
    {
        int flags = Interop.Sys.Fcntl(fd, Interop.Libc.F_GETFL, 0);
        Assert.That(flags, Is.GreaterThanOrEqualTo(0));
        return (flags & Interop.Libc.O_NONBLOCK) != 0;
    }

    [Test, CancelAfter(30_000)]
    public async Task A_child_process_inherits_none_of_our_fds(CancellationToken ct)
    {
        using var dir = new TempDirectory();
        var connections = new List<FdConnection>();
        var rawFds = new List<RawFd>();
        var handles = new List<SafeHandle>();
        await using var unixListener = FdListener.Bind(new UnixDomainSocketEndPoint(dir.File("s")));
        await using var tcpListener = FdListener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        using var pendingCancel = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Task<FdConnection>? pendingOpen = null;
        try
        {
            (FdConnection a, FdConnection b) = FdConnection.CreatePair();
            connections.AddRange([a, b]);

            (SafeFdHandle r1, SafeFdHandle w1) = Pipe();
            (SafeFdHandle r2, SafeFdHandle w2) = Pipe();
            connections.AddRange([FdConnection.FromFds(r1, w2), FdConnection.FromFds(r2, w1)]);

            string x = dir.File("x");
            string y = dir.File("y");
            Fifo.Create(x);
            Fifo.Create(y);
            Task<FdConnection> first = FdConnection.OpenFifoAsync(x, y, new FdConnectionOptions { KeepFifoReaderOpen = true }, ct).AsTask();
            connections.Add(await FdConnection.OpenFifoAsync(y, x, null, ct));
            connections.Add(await first);

            // An open still waiting for its reader holds an inotify fd and a FIFO read end.
            string z = dir.File("z");
            string nobodyReads = dir.File("nobody-reads");
            Fifo.Create(z);
            Fifo.Create(nobodyReads);
            pendingOpen = FdConnection.OpenFifoAsync(z, nobodyReads, null, pendingCancel.Token).AsTask();
            Assert.That(pendingOpen.IsCompleted, Is.False);

            foreach (FdListener listener in new[] { unixListener, tcpListener })
            {
                ValueTask<FdConnection?> accept = listener.AcceptAsync(ct);
                connections.Add(await FdConnection.ConnectAsync(listener.LocalEndPoint, null, ct));
                connections.Add(await accept ?? throw new InvalidOperationException("listener closed"));
            }

            (SafeFdHandle r3, SafeFdHandle w3) = Pipe();
            handles.AddRange([r3, w3]);
            rawFds.Add(RawFd.Create(r3));

            // Every connection's receive loop running too.
            ValueTask<ReadResult>[] reads = connections.Select(c => c.Input.ReadAsync(ct)).ToArray();
            Assert.That(reads.Any(r => r.IsCompleted), Is.False);

            var ours = new Dictionary<int, string>();
            foreach (FdConnection connection in connections)
            {
                foreach (RawFd raw in new[] { connection.InputFd, connection.OutputFd })
                {
                    int fd = FdOf(raw);
                    ours[fd] = Target(fd);
                }
            }

            foreach (RawFd raw in rawFds)
            {
                int fd = FdOf(raw);
                ours[fd] = Target(fd);
            }

            // The reactors' epoll and eventfd fds and the pending open's inotify fd are ours too.
            foreach ((int fd, string target) in FdTable())
            {
                if (target.StartsWith("anon_inode:", StringComparison.Ordinal))
                {
                    ours.TryAdd(fd, target);
                }
            }

            Assert.That(ours.Keys.Where(fd => !IsCloseOnExec(fd)), Is.Empty, "fds of ours without O_CLOEXEC");

            Dictionary<int, string> child = await ChildFdsAsync(ct);

            // The child's 0, 1 and 2 are its own (stdin, and the pipes Process.Start made for it).
            // Besides ls's own directory fd, it may only have what this test process inherited from
            // its parent without O_CLOEXEC (the test host's /dev/null and pipe), never one of ours.
            var inherited = child.Where(p => p.Key > 2 && !p.Value.StartsWith("/proc/", StringComparison.Ordinal)).ToDictionary();
            string Describe() => string.Join(", ", inherited.Select(p => $"{p.Key}->{p.Value}"));
            Assert.That(inherited.Keys.Where(ours.ContainsKey), Is.Empty, () => $"fd numbers of ours in the child: {Describe()}");
            Assert.That(inherited.Values, Has.None.AnyOf(ours.Values.Where(t => !t.StartsWith("anon_inode:", StringComparison.Ordinal)).Distinct().ToArray()), Describe);
            Assert.That(inherited.Values, Has.None.StartsWith("anon_inode:"), Describe);
            Assert.That(inherited.Values, Has.None.Contains(dir.Path), Describe);
            Dictionary<int, string> mine = FdTable();
            Assert.That(inherited.Where(p => !mine.TryGetValue(p.Key, out string? t) || t != p.Value || IsCloseOnExec(p.Key)), Is.Empty,
                () => $"the child has fds that are not this process's own inheritable ones: {Describe()}");
        }
        finally
        {
            pendingCancel.Cancel();
            if (pendingOpen is not null)
            {
                Assert.That(async () => await pendingOpen, Throws.InstanceOf<OperationCanceledException>());
            }

            foreach (FdConnection connection in connections)
            {
                await connection.DisposeAsync();
            }

            rawFds.ForEach(r => r.Dispose());
            handles.ForEach(h => h.Dispose());
        }
    }

    private static bool IsCloseOnExec(int fd)
    {
        const int O_CLOEXEC = 0x80000;
        string flags = File.ReadAllLines($"/proc/self/fdinfo/{fd}").First(l => l.StartsWith("flags:", StringComparison.Ordinal))["flags:".Length..].Trim();
        return (Convert.ToInt32(flags, 8) & O_CLOEXEC) != 0;
    }

    /// <summary>The child's fds and their targets, as <c>ls -l /proc/self/fd</c> in the child reports them.</summary>
    private static async Task<Dictionary<int, string>> ChildFdsAsync(CancellationToken ct)
    {
        var info = new ProcessStartInfo("ls") { RedirectStandardOutput = true, UseShellExecute = false };
        info.ArgumentList.Add("-l");
        info.ArgumentList.Add("/proc/self/fd");
        using Process child = Process.Start(info) ?? throw new InvalidOperationException("ls did not start");
        string output;
        using (StreamReader stdout = child.StandardOutput) // Process.Dispose leaves it to the finalizer
        {
            output = await stdout.ReadToEndAsync(ct);
        }

        await child.WaitForExitAsync(ct);
        Assert.That(child.ExitCode, Is.Zero, output);

        var fds = new Dictionary<int, string>();
        foreach (string line in output.Split('\n'))
        {
            int arrow = line.IndexOf(" -> ", StringComparison.Ordinal);
            if (arrow < 0)
            {
                continue;
            }

            string left = line[..arrow];
            int fd = int.Parse(left[(left.LastIndexOf(' ') + 1)..]);
            fds[fd] = line[(arrow + 4)..];
        }

        Assert.That(fds.Keys, Is.SupersetOf(new[] { 0, 1, 2 }), output);
        return fds;
    }

    private static async Task AssertListenerCyclesLeaveNoFdsAsync(EndPoint endPoint, CancellationToken ct)
    {
        int beforeListener = OpenFdCount();
        await using (FdListener listener = FdListener.Bind(endPoint))
        {
            await AssertCyclesLeaveNoFdsAsync(async (_, token) =>
            {
                ValueTask<FdConnection?> accept = listener.AcceptAsync(token);
                FdConnection client = await FdConnection.ConnectAsync(listener.LocalEndPoint, null, token);
                FdConnection server = await accept ?? throw new InvalidOperationException("listener closed");
                return (client, server);
            }, ct);
        }

        Assert.That(OpenFdCount(), Is.EqualTo(beforeListener), "the listener's fd was closed too");
    }

    private static async Task AssertCyclesLeaveNoFdsAsync(Opener open, CancellationToken ct, int cycles = Cycles)
    {
        for (int i = 0; i < WarmUpCycles; i++)
        {
            await CycleAsync(open, i, ct);
        }

        // Earlier tests may leave handles for the finalizer (Process keeps its redirected streams
        // open after Dispose): let them go now rather than in the middle of the count.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Dictionary<int, string> table = FdTable();
        int before = OpenFdCount();

        for (int i = 0; i < cycles; i++)
        {
            await CycleAsync(open, i, ct);
        }

        Assert.That(OpenFdCount(), Is.EqualTo(before), () => $"fds changed: {FdChanges(table)}");
    }

    private static async Task CycleAsync(Opener open, int cycle, CancellationToken ct)
    {
        (FdConnection a, FdConnection b) = await open(cycle, ct);
        try
        {
            switch (cycle % 3)
            {
                case 0:
                    await ExchangeWithHalfCloseAsync(a, b, ct);
                    break;
                case 1:
                    ValueTask<ReadResult> readA = a.Input.ReadAsync(ct);
                    ValueTask<ReadResult> readB = b.Input.ReadAsync(ct);
                    await a.DisposeAsync();
                    await b.DisposeAsync();
                    await readA;
                    await readB;
                    break;
                default:
                    await a.Output.WriteAsync(new byte[] { 1, 2, 3 }, ct);
                    a.Abort();
                    b.Abort(new OperationCanceledException("test abort"));
                    break;
            }
        }
        finally
        {
            await a.DisposeAsync();
            await b.DisposeAsync();
        }
    }

    private static async Task ExchangeWithHalfCloseAsync(FdConnection a, FdConnection b, CancellationToken ct)
    {
        await a.Output.WriteAsync("ping"u8.ToArray(), ct);
        await a.Output.CompleteAsync();
        Assert.That(await ReadToEndAsync(b.Input, ct), Is.EqualTo("ping"u8.ToArray()));
        await b.Output.WriteAsync("pong"u8.ToArray(), ct);
        await b.Output.CompleteAsync();
        Assert.That(await ReadToEndAsync(a.Input, ct), Is.EqualTo("pong"u8.ToArray()));
    }
}
