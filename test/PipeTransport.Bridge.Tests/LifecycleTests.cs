using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Mono.Unix.Native;
using NUnit.Framework;

namespace PipeTransport.Bridge.Tests;

/// <summary>Created files, signals, stdio, --stats.</summary>
public sealed partial class LifecycleTests
{
    // The bound covers starting and stopping a .NET process: with two busy loops on both CPUs and the
    // core suite running beside it, that took over 10 s in one such run in session 4 and one in 5.
    private const int SignalTestBound = 30_000;

    [Test, CancelAfter(SignalTestBound)]
    public async Task SigtermRemovesTheFifosItCreated(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string existing = dir.Fifo("existing");
        string created = dir["created"];
        await using var bridge = BridgeProcess.Start("-u", "-d", "-d", $"fifo:{existing}", $"fifo:{created}");
        await bridge.WaitLineAsync(CreatedLine(), cancellationToken);
        Assert.That(File.Exists(created), Is.True);

        bridge.Signal(Signum.SIGTERM);
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.EqualTo(143), bridge.Stderr);
        Assert.That(File.Exists(created), Is.False, "the FIFO it created is removed");
        Assert.That(File.Exists(existing), Is.True, "a FIFO it did not create stays");
    }

    [Test, CancelAfter(SignalTestBound)]
    public async Task SigintRemovesTheSocketItListensOn(CancellationToken cancellationToken)
    {
        // A job started in the background by a non-interactive shell (or under nohup and friends)
        // ignores SIGINT, and so does every child it starts: the bridge would then rightly not react.
        Assume.That(IgnoredHere(Signum.SIGINT), Is.False,
            "SIGINT is ignored in this test process (inherited from a background job), so the bridge child inherits that too");
        using var dir = new TempDir();
        string socketPath = dir["l.sock"];
        await using var bridge = BridgeProcess.Start("-d", "-d", $"unix-listen:{socketPath}", $"fifo:{dir["a"]}!!fifo:{dir["b"]}");
        await bridge.WaitListeningAsync(cancellationToken);
        Assert.That(File.Exists(socketPath), Is.True);

        bridge.Signal(Signum.SIGINT);
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.EqualTo(130), bridge.Stderr);
        Assert.That(File.Exists(socketPath), Is.False);
    }

    /// <summary>Whether <paramref name="signal"/> is ignored in this process (the SigIgn mask of /proc/self/status).</summary>
    private static bool IgnoredHere(Signum signal)
    {
        string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        ulong mask = ulong.Parse(line["SigIgn:".Length..].Trim(), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
        return (mask & (1UL << ((int)signal - 1))) != 0;
    }

    /// <summary>stdin/stdout are pipes here: auto picks splice for them; the echo ends with EOF both ways.</summary>
    [TestCase("auto"), TestCase("copy"), CancelAfter(20_000)]
    public async Task StdioThroughUnixEcho(string engine, CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string socketPath = dir["echo.sock"];
        await using var echo = BridgeProcess.StartSocat($"UNIX-LISTEN:{socketPath}", "EXEC:cat");
        await echo.WaitListeningAsync(cancellationToken);
        await using var bridge = BridgeProcess.Start(["--engine", engine, "stdio", $"unix:{socketPath}"], redirectStdio: true);

        Task<byte[]> written = TestData.WriteAsync(bridge.Process.StandardInput.BaseStream, 16 * TestData.MiB, 8, cancellationToken);
        var (length, hash) = await TestData.ReadAsync(bridge.Process.StandardOutput.BaseStream, cancellationToken);

        Assert.That(length, Is.EqualTo(16 * TestData.MiB));
        Assert.That(hash, Is.EqualTo(await written));
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
    }

    /// <summary>A!!B: read one FIFO, write another, both directions through a socat echo server.</summary>
    [TestCase("auto"), TestCase("copy"), CancelAfter(20_000)]
    public async Task SplitFifoAddressThroughUnixEcho(string engine, CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string input = dir.Fifo("in"), output = dir.Fifo("out"), socketPath = dir["echo.sock"];
        await using var echo = BridgeProcess.StartSocat($"UNIX-LISTEN:{socketPath}", "EXEC:cat");
        await echo.WaitListeningAsync(cancellationToken);
        await using var bridge = BridgeProcess.Start("--engine", engine, $"fifo:{input}!!fifo:{output}", $"unix:{socketPath}");

        Task<byte[]> written = Task.Run(async () =>
            await TestData.WriteAsync(await FifoStream.OpenAsync(input, FileAccess.Write, cancellationToken), 16 * TestData.MiB, 9, cancellationToken));
        var (length, hash) = await TestData.ReadAsync(await FifoStream.OpenAsync(output, FileAccess.Read, cancellationToken), cancellationToken);

        Assert.That(length, Is.EqualTo(16 * TestData.MiB));
        Assert.That(hash, Is.EqualTo(await written));
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
    }

    [Test, CancelAfter(20_000)]
    public async Task StatsPrintsASummary(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string output = dir["copy.bin"];
        await using var bridge = BridgeProcess.Start(["-u", "--stats", "stdio", $"file:{output}"], redirectStdio: true);
        await bridge.Process.StandardInput.BaseStream.WriteAsync(Encoding.ASCII.GetBytes("hello, bridge\n"), cancellationToken);
        bridge.Process.StandardInput.Close();

        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(bridge.Stderr, Does.Match(@"pipebridge: 14 bytes \(14 B\) in [0-9.]+ s, .*/s"));
        Assert.That(await File.ReadAllTextAsync(output, cancellationToken), Is.EqualTo("hello, bridge\n"));
    }

    [GeneratedRegex("created (fifo:.+)$")]
    private static partial Regex CreatedLine();
}
