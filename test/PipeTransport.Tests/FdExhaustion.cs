using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using NUnit.Framework;

namespace PipeTransport.Tests;

/// <summary>
/// A server process whose fd table fills with client connections: it runs under
/// <c>prlimit --nofile=Limit:Limit</c>, and this process connects more clients than its table holds.
/// Checks what a server at the fd limit must do: serve the connections it has, wait for fds without
/// spinning, keep its headroom, and serve the queued and new clients once fds come free, alive.
/// Shared by the core, Kestrel and pipebridge tests (linked into each project).
/// </summary>
internal sealed class FdExhaustion : IAsyncDisposable
{
    /// <summary>The default RLIMIT_NOFILE of the child, soft and hard (the .NET runtime raises the soft limit to the hard one).</summary>
    public const int DefaultLimit = 256;

    /// <summary>Clients beyond what the table holds, to wait in the backlog (listeners default to 512).</summary>
    private const int ExtraClients = 40;

    /// <summary>
    /// Left out of the CPU measurement: the runtime's own work after the burst of connections (tiered
    /// JIT recompiling what ran hot, in bursts seconds apart), which is no part of waiting. The
    /// measurement starts once the JIT's background thread has been idle for <see cref="JitQuietInterval"/>,
    /// or after <see cref="MaxSettleInterval"/>.
    /// </summary>
    public static readonly TimeSpan JitQuietInterval = TimeSpan.FromSeconds(3);

    /// <summary>The longest wait for the JIT to settle.</summary>
    public static readonly TimeSpan MaxSettleInterval = TimeSpan.FromSeconds(30);

    /// <summary>The runtime's tiered-compilation thread, as /proc shows its name (15 characters).</summary>
    private const string JitThreadName = ".NET Tiered Com";

    /// <summary>How long CPU use is measured while the server waits at the limit.</summary>
    public static readonly TimeSpan CpuInterval = TimeSpan.FromSeconds(5);

    /// <summary>At most this share of one core while waiting at the limit.</summary>
    public const double MaxCpuShare = 0.05;

    /// <summary>Fds come free: the first client of the backlog is served within this.</summary>
    public static readonly TimeSpan MaxResumeLatency = TimeSpan.FromSeconds(1);

    /// <summary>/proc/PID/stat counts CPU time in USER_HZ ticks, 100 per second on every Linux ABI.</summary>
    private const double TicksPerSecond = 100;

    private readonly Process _process;
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly List<string> _output = [];
    private int _closedStreams;

    private FdExhaustion(Process process, int limit)
    {
        _process = process;
        Limit = limit;
    }

    /// <summary>The child's RLIMIT_NOFILE.</summary>
    public int Limit { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Everything the child wrote so far (stdout and stderr), for assertion messages.</summary>
    public string Output
    {
        get { lock (_output) return string.Join('\n', _output); }
    }

    /// <summary>Starts <paramref name="program"/> under the fd limit <paramref name="limit"/>, stdout and stderr read line by line.</summary>
    public static FdExhaustion Start(int limit, string program, params string[] args)
    {
        var info = new ProcessStartInfo("prlimit")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in (string[])[$"--nofile={limit}:{limit}", "--", program, .. args])
        {
            info.ArgumentList.Add(arg);
        }

        var process = new Process { StartInfo = info };
        var child = new FdExhaustion(process, limit);
        process.OutputDataReceived += (_, e) => child.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => child.OnLine(e.Data);
        process.Start(); // prlimit execs the program: this pid is the server's
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>The test executable itself, in one of its child modes (see Program).</summary>
    public static FdExhaustion StartTestChild(int limit, params string[] args) =>
        Start(limit, "dotnet", [typeof(FdExhaustion).Assembly.Location, "--child", .. args]);

    private void OnLine(string? line)
    {
        if (line is null)
        {
            if (Interlocked.Increment(ref _closedStreams) == 2)
            {
                _lines.Writer.TryComplete(new InvalidOperationException($"the child exited: {Output}"));
            }

            return;
        }

        lock (_output)
        {
            _output.Add(line);
        }

        _lines.Writer.TryWrite(line);
    }

    /// <summary>Waits for an output line starting with <paramref name="prefix"/>; returns the rest of it.</summary>
    public async Task<string> WaitLineAsync(string prefix, CancellationToken cancellationToken)
    {
        while (true)
        {
            string line = await _lines.Reader.ReadAsync(cancellationToken);
            int at = line.IndexOf(prefix, StringComparison.Ordinal);
            if (at >= 0)
            {
                return line[(at + prefix.Length)..].Trim();
            }
        }
    }

    /// <summary>Closes the child's stdin (the test children stop on EOF) and returns its exit code.</summary>
    public async Task<int> StopAsync(CancellationToken cancellationToken)
    {
        _process.StandardInput.Close();
        await _process.WaitForExitAsync(cancellationToken);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    /// <summary>utime + stime of the process, in ticks.</summary>
    public long CpuTicks() => TicksOf($"/proc/{Pid}/stat");

    /// <summary>utime + stime of the runtime's tiered-compilation thread (0 without one).</summary>
    private long JitTicks()
    {
        long ticks = 0;
        foreach (string task in Directory.GetDirectories($"/proc/{Pid}/task"))
        {
            try
            {
                if (File.ReadAllText($"{task}/comm").TrimEnd('\n') == JitThreadName)
                {
                    ticks += TicksOf($"{task}/stat");
                }
            }
            catch (IOException)
            {
                // the thread ended
            }
        }

        return ticks;
    }

    /// <summary>utime + stime from a /proc stat file.</summary>
    private static long TicksOf(string statPath)
    {
        string stat = File.ReadAllText(statPath);
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' '); // fields from the 3rd (state) on
        return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
    }

    public int OpenFds() => Directory.GetFileSystemEntries($"/proc/{Pid}/fd").Length;

    /// <summary>Whether the child has mapped a native library whose path contains <paramref name="name"/>.</summary>
    public bool HasLoaded(string name) => File.ReadAllText($"/proc/{Pid}/maps").Contains(name, StringComparison.Ordinal);

    /// <summary>Connections waiting in the accept queues of the IPv4 listening sockets on <paramref name="port"/> (all of them, with SO_REUSEPORT).</summary>
    public static int AcceptQueue(int port)
    {
        int queued = 0;
        foreach (string line in File.ReadLines("/proc/net/tcp").Skip(1))
        {
            string[] f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // local_address is HEXIP:HEXPORT; state 0A is LISTEN, whose rx_queue is the accept queue.
            if (f[3] == "0A" && int.Parse(f[1][(f[1].IndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture) == port)
            {
                queued += int.Parse(f[4][(f[4].IndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            }
        }

        return queued;
    }

    /// <summary>
    /// The whole scenario against a child listening on 127.0.0.1:<paramref name="port"/>.
    /// <paramref name="exchange"/> sends one request on a client socket and waits for its whole answer.
    /// <paramref name="headroom"/> is the server's listener's headroom; at the limit at least
    /// <paramref name="keptFree"/> fds (default: half the headroom) are still free.
    /// </summary>
    public async Task<Report> RunAsync(int port, Func<Socket, CancellationToken, Task> exchange, int headroom, CancellationToken ct, int? keptFree = null)
    {
        int count = Limit + ExtraClients;
        var clients = new Socket[count];
        var exchanges = new Task[count];
        try
        {
            // A first request loads what serving needs (the runtime keeps an fd per loaded assembly).
            using (var first = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
            {
                await first.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), ct);
                await exchange(first, ct);
            }

            for (int i = 0; i < count; i++)
            {
                clients[i] = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await clients[i].ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), ct);
                exchanges[i] = exchange(clients[i], ct);
            }

            // At the limit: every connection the server took is answered, the rest wait in the backlog,
            // and the table is as full as the server lets it get.
            int fullAt = Limit - headroom - 4;
            int answered = 0, queued = 0;
            while (!(queued > 0 && answered + queued == count && OpenFds() >= fullAt))
            {
                Assert.That(HasExited, Is.False, $"the server died: {Output}");
                Assert.That(exchanges.FirstOrDefault(t => t.IsFaulted)?.Exception, Is.Null, "an accepted client failed");
                await Task.Delay(20, ct);
                (int, int) previous = (answered, queued);
                answered = exchanges.Count(t => t.IsCompletedSuccessfully);
                queued = AcceptQueue(port);
                if ((answered, queued) != previous)
                {
                    TestContext.Progress.WriteLine($"{answered} answered, {queued} in the backlog, {OpenFds()} fds open");
                }
            }

            // Waiting at the limit costs (almost) no CPU.
            long ticks = CpuTicks();
            var interval = Stopwatch.StartNew();
            var quiet = Stopwatch.StartNew();
            for (long jit = JitTicks(); quiet.Elapsed < JitQuietInterval && interval.Elapsed < MaxSettleInterval;)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(100), ct);
                if (JitTicks() != jit)
                {
                    jit = JitTicks();
                    quiet.Restart();
                }
            }

            double settlingShare = (CpuTicks() - ticks) / TicksPerSecond / interval.Elapsed.TotalSeconds;
            TimeSpan settled = interval.Elapsed;
            ticks = CpuTicks();
            interval.Restart();
            await Task.Delay(CpuInterval, ct);
            double cpuShare = (CpuTicks() - ticks) / TicksPerSecond / interval.Elapsed.TotalSeconds;
            int fdsAtLimit = OpenFds();
            Assert.That(cpuShare, Is.LessThan(MaxCpuShare), "CPU share of one core while waiting at the fd limit");
            Assert.That(AcceptQueue(port), Is.GreaterThan(0), "clients still wait in the backlog");
            Assert.That(Limit - fdsAtLimit, Is.GreaterThanOrEqualTo(keptFree ?? headroom / 2), "the headroom is kept");

            // The connections it has keep working.
            int[] served = Enumerable.Range(0, count).Where(i => exchanges[i].IsCompletedSuccessfully).ToArray();
            int[] keep = served.Take(10).ToArray();
            await Task.WhenAll(keep.Select(i => exchange(clients[i], ct)));

            // Fds come free: the queued clients are served (each closes once answered, so the rest fit), then new ones.
            var resume = Stopwatch.StartNew();
            foreach (int i in served.Skip(keep.Length))
            {
                clients[i].Dispose();
            }

            Task[] waiting = Enumerable.Range(0, count).Where(i => !exchanges[i].IsCompleted)
                .Select(async i =>
                {
                    await exchanges[i];
                    clients[i].Dispose();
                }).ToArray();
            await Task.WhenAny(waiting);
            TimeSpan firstQueuedServed = resume.Elapsed;
            Assert.That(firstQueuedServed, Is.LessThan(MaxResumeLatency), "from freeing fds to serving the first queued client");
            await Task.WhenAll(waiting);
            for (int i = 0; i < 5; i++)
            {
                using var fresh = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await fresh.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), ct);
                await exchange(fresh, ct);
            }

            Assert.That(HasExited, Is.False, $"the server died: {Output}");
            await Task.WhenAll(keep.Select(i => exchange(clients[i], ct)));
            var report = new Report(served.Length, waiting.Length, fdsAtLimit, settled, settlingShare, cpuShare, firstQueuedServed, resume.Elapsed);
            TestContext.Out.WriteLine(report);
            return report;
        }
        finally
        {
            foreach (Socket? client in clients)
            {
                client?.Dispose();
            }
        }
    }

    /// <summary>What the scenario measured.</summary>
    public sealed record Report(int Served, int Queued, int FdsAtLimit, TimeSpan Settled, double SettlingCpuShare, double CpuShare, TimeSpan FirstQueuedServed, TimeSpan AllQueuedServed);
}
