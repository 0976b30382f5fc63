using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Mono.Unix.Native;
using NUnit.Framework;

namespace PipeTransport.Bridge.Tests;

/// <summary>exec: and system: with real programs (cat, sh, python3) and real peers (sockets, socat, stdio).</summary>
public sealed partial class ExecTests
{
    /// <summary>exec:/bin/cat behind a TCP listener: 8 MiB each way, hashed, and EOF both ways.</summary>
    [TestCase("copy"), TestCase("splice"), CancelAfter(30_000)]
    public async Task ExecCatEchoesATcpClient(string engine, CancellationToken cancellationToken)
    {
        await using var bridge = BridgeProcess.Start("-d", "-d", "--engine", engine, "tcp-listen:127.0.0.1:0", "exec:/bin/cat");
        int port = await bridge.WaitTcpPortAsync(cancellationToken);
        using var client = await ConnectAsync(port, cancellationToken);
        var stream = new NetworkStream(client, ownsSocket: false);
        Task<byte[]> sent = IntegrityTests.SendThenShutdownAsync(client, stream, 8 * TestData.MiB, 31, cancellationToken);
        var (length, hash) = await TestData.ReadAsync(stream, cancellationToken, close: false);

        Assert.That(length, Is.EqualTo(8 * TestData.MiB));
        Assert.That(hash, Is.EqualTo(await sent));
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(bridge.Stderr, Does.Match(@"exec:/bin/cat \(pid \d+\) exited with status 0"));
    }

    /// <summary>
    /// The peer's EOF closes the child's stdin (cat ends, then the shell goes on), and the child's EOF
    /// reaches the peer only after that: the output ends with what the shell printed after cat.
    /// </summary>
    [Test, CancelAfter(20_000)]
    public async Task SystemRunsAShellAndSeesStdinEnd(CancellationToken cancellationToken)
    {
        string output = await RunStdioAsync(["STDIO", "system:tr a-z A-Z; echo \"after eof, $((6*7))\""], "hello\n", 0, cancellationToken);
        Assert.That(output, Is.EqualTo("HELLO\nafter eof, 42\n"));
    }

    /// <summary>exec: splits words itself (quotes group, no shell: no $VAR, no globbing).</summary>
    [Test, CancelAfter(20_000)]
    public async Task ExecSplitsWordsWithoutAShell(CancellationToken cancellationToken)
    {
        string output = await RunStdioAsync(["-u", "exec:printf %s| 'a b' c \"d  e\" $HOME *", "STDOUT"], "", 0, cancellationToken);
        Assert.That(output, Is.EqualTo("a b|c|d  e|$HOME|*|"));
    }

    /// <summary>A python3 one-liner that needs its stdin's EOF (read() to the end) before it answers.</summary>
    [Test, CancelAfter(20_000)]
    public async Task ExecPythonReadsToEndThenAnswers(CancellationToken cancellationToken)
    {
        string output = await RunStdioAsync(["-", "exec:python3 -c 'import sys; sys.stdout.write(sys.stdin.read()[::-1])'"], "abc\n", 0, cancellationToken);
        Assert.That(output, Is.EqualTo("\ncba"));
    }

    /// <summary>A child that fails makes pipebridge fail: exit 1 and one line with the status (the rest of the input is dropped).</summary>
    [TestCase("system:exit 3", 3)]
    [TestCase("exec:/bin/sh -c 'exit 5'", 5)]
    [TestCase("exec:python3 -c 'import sys; sys.exit(7)'", 7)]
    [CancelAfter(20_000)]
    public async Task ANonZeroExitStatusFails(string exec, int status, CancellationToken cancellationToken)
    {
        await using var bridge = BridgeProcess.Start(["STDIO", exec], redirectStdio: true);
        Task writing = Task.Run(async () =>
        {
            try
            {
                await bridge.Process.StandardInput.BaseStream.WriteAsync(new byte[4 << 20], cancellationToken);
                bridge.Process.StandardInput.Close();
            }
            catch (IOException)
            {
                // EPIPE: pipebridge has gone without reading it all, as it should.
            }
        }, cancellationToken);
        Assert.That(await bridge.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.Empty);
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.EqualTo(1));
        Assert.That(bridge.Stderr, Is.EqualTo($"pipebridge: {exec}: exited with status {status}"));
        await writing;
    }

    [Test, CancelAfter(20_000)]
    public async Task AMissingProgramIsAnIoError(CancellationToken cancellationToken)
    {
        await using var bridge = BridgeProcess.Start(["STDIO", "exec:no-such-program-w15 x"], redirectStdio: true);
        bridge.Process.StandardInput.Close();
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.EqualTo(1));
        Assert.That(bridge.Stderr, Is.EqualTo("pipebridge: exec:no-such-program-w15 x: exec: ENOENT (No such file or directory)"));
    }

    /// <summary>
    /// -u: exec: as ADDRESS1 is read (its stdin is empty); as ADDRESS2 it is written and its stdout is
    /// pipebridge's own.
    /// </summary>
    [Test, CancelAfter(20_000)]
    public async Task UnidirectionalExecReadsOrWrites(CancellationToken cancellationToken)
    {
        Assert.That(await RunStdioAsync(["-u", "exec:seq 3", "STDOUT"], "ignored\n", 0, cancellationToken), Is.EqualTo("1\n2\n3\n"));
        Assert.That(await RunStdioAsync(["-u", "STDIN", "exec:tr a-z A-Z"], "abc\n", 0, cancellationToken), Is.EqualTo("ABC\n"));
    }

    /// <summary>
    /// The child closes its stdout early: the peer gets EOF while it can still send, and what it sends
    /// afterwards still reaches the child (half-close in both directions).
    /// </summary>
    [Test, CancelAfter(20_000)]
    public async Task TheChildsEofHalfClosesThePeer(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string got = dir["got.txt"];
        await using var bridge = BridgeProcess.Start("-d", "-d", "tcp-listen:127.0.0.1:0", $"system:echo hi; exec >&-; cat > {got}");
        int port = await bridge.WaitTcpPortAsync(cancellationToken);
        using var client = await ConnectAsync(port, cancellationToken);
        var stream = new NetworkStream(client, ownsSocket: false);
        Assert.That(await new StreamReader(stream).ReadToEndAsync(cancellationToken), Is.EqualTo("hi\n"), "EOF after the child's output");

        await stream.WriteAsync("late data\n"u8.ToArray(), cancellationToken);
        client.Shutdown(SocketShutdown.Send);
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(await File.ReadAllTextAsync(got, cancellationToken), Is.EqualTo("late data\n"));
    }

    /// <summary>
    /// The child has fds 0, 1 and 2 and nothing of pipebridge's (sockets, epoll, pipes): the only others
    /// it may have are those this test process passes down to pipebridge (no O_CLOEXEC here).
    /// </summary>
    [Test, CancelAfter(20_000)]
    public async Task TheChildHasOnlyStdio(CancellationToken cancellationToken)
    {
        // stat(2) of each /proc/self/fd entry opens nothing (listing the folder would open an fd).
        const string listFds = "exec:python3 -c \"import os; print(' '.join(str(f) for f in range(1024) if os.path.exists('/proc/self/fd/%d' % f)))\"";
        string output = await RunStdioAsync(["STDIO", listFds], "", 0, cancellationToken);
        int[] childFds = output.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(f => int.Parse(f, CultureInfo.InvariantCulture)).Order().ToArray();
        Assert.That(childFds, Is.SupersetOf(new[] { 0, 1, 2 }));
        Assert.That(childFds.Where(fd => fd > 2), Is.SubsetOf(InheritableFdsOfThisProcess()), $"the child's fds: {output}");
    }

    /// <summary>
    /// tcp-listen with fork and exec: one child per connection (each prints its pid), served at once; a
    /// child that fails is reported and the listener goes on.
    /// </summary>
    [Test, CancelAfter(30_000)]
    public async Task ForkRunsOneChildPerConnection(CancellationToken cancellationToken)
    {
        await using var bridge = BridgeProcess.Start("-d", "-d", "tcp-listen:0,bind=127.0.0.1,fork,reuseaddr", "system:read n; echo \"$n $$\"; exit $n");
        int port = await bridge.WaitTcpPortAsync(cancellationToken);

        string[] answers = await Task.WhenAll(new[] { 0, 0, 3, 0 }.Select(async n =>
        {
            await using var socat = BridgeProcess.StartSocat($"TCP:127.0.0.1:{port}", "STDIO");
            await socat.Process.StandardInput.WriteAsync($"{n}\n");
            socat.Process.StandardInput.Close();
            string answer = await socat.Process.StandardOutput.ReadToEndAsync(cancellationToken);
            Assert.That(await socat.WaitExitAsync(cancellationToken), Is.Zero, socat.Stderr);
            return answer;
        }));
        string[] pids = answers.Select(a => Regex.Match(a, @"^\d (\d+)\n$").Groups[1].Value).ToArray();
        Assert.That(pids, Is.All.Not.Empty, string.Join(" / ", answers));
        Assert.That(pids, Is.Unique, string.Join(" / ", answers));

        await bridge.WaitLineAsync(FailedChildLine(), cancellationToken);
        Assert.That(bridge.Process.HasExited, Is.False, "the listener keeps serving");
        bridge.Signal(Signum.SIGTERM);
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.EqualTo(143), bridge.Stderr);
    }

    [GeneratedRegex(@"^pipebridge: (system:read n.*): exited with status 3$")]
    private static partial Regex FailedChildLine();

    private static async Task<string> RunStdioAsync(string[] args, string input, int exitCode, CancellationToken cancellationToken)
    {
        await using var bridge = BridgeProcess.Start(args, redirectStdio: true);
        await bridge.Process.StandardInput.BaseStream.WriteAsync(Encoding.ASCII.GetBytes(input), cancellationToken);
        bridge.Process.StandardInput.Close();
        string output = await bridge.Process.StandardOutput.ReadToEndAsync(cancellationToken);
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.EqualTo(exitCode), bridge.Stderr);
        return output;
    }

    private static async Task<Socket> ConnectAsync(int port, CancellationToken cancellationToken)
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
        return client;
    }

    /// <summary>The fds (3 and up) this process would pass to a child: those without O_CLOEXEC (/proc/self/fdinfo "flags", octal).</summary>
    internal static int[] InheritableFdsOfThisProcess()
    {
        const int OCloexec = 0x80000;
        var fds = new List<int>();
        foreach (string path in Directory.GetFiles("/proc/self/fdinfo"))
        {
            if (!int.TryParse(Path.GetFileName(path), NumberStyles.None, CultureInfo.InvariantCulture, out int fd) || fd < 3) continue;
            try
            {
                string? flags = File.ReadLines(path).FirstOrDefault(l => l.StartsWith("flags:", StringComparison.Ordinal));
                if (flags is not null && (Convert.ToInt32(flags["flags:".Length..].Trim(), 8) & OCloexec) == 0) fds.Add(fd);
            }
            catch (IOException)
            {
                // Closed meanwhile.
            }
        }
        return [.. fds];
    }
}
