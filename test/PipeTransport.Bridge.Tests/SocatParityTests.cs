using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Mono.Unix.Native;
using NUnit.Framework;

namespace PipeTransport.Bridge.Tests;

/// <summary>Command lines that socat users type, behaving as they do under socat.</summary>
public sealed partial class SocatParityTests
{
    /// <summary><c>echo abc | socat - -</c> echoes stdin to stdout once; both addresses are fds 0 and 1.</summary>
    [TestCase("-", "-"), TestCase("stdio", "-"), CancelAfter(20_000)]
    public async Task StdioToStdioEchoesStdin(string first, string second, CancellationToken cancellationToken)
    {
        await using var bridge = BridgeProcess.Start([first, second], redirectStdio: true);
        await bridge.Process.StandardInput.BaseStream.WriteAsync(Encoding.ASCII.GetBytes("abc\n"), cancellationToken);
        bridge.Process.StandardInput.Close();

        string output = await bridge.Process.StandardOutput.ReadToEndAsync(cancellationToken);
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(output, Is.EqualTo("abc\n"));
        Assert.That(bridge.Stderr, Is.Empty);
    }

    /// <summary>
    /// The read and the write end of one FIFO as one address (socat's <c>PIPE:</c> echo): the client's
    /// bytes come back, more than the FIFO holds, then EOF once the client has half-closed.
    /// </summary>
    [TestCase("copy"), TestCase("splice"), CancelAfter(30_000)]
    public async Task EchoThroughOneFifo(string engine, CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string loop = dir["loop"];
        await using var bridge = BridgeProcess.Start("-d", "-d", "--engine", engine, "tcp-listen:127.0.0.1:0", $"fifo:{loop}!!fifo:{loop}");
        int port = await bridge.WaitTcpPortAsync(cancellationToken);

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
        var stream = new NetworkStream(client, ownsSocket: false);
        Task<byte[]> sent = IntegrityTests.SendThenShutdownAsync(client, stream, 8 * TestData.MiB, 21, cancellationToken);
        var (length, hash) = await TestData.ReadAsync(stream, cancellationToken, close: false);

        Assert.That(length, Is.EqualTo(8 * TestData.MiB));
        Assert.That(hash, Is.EqualTo(await sent));
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(File.Exists(loop), Is.False, "the FIFO it created is removed");
    }

    /// <summary>
    /// --stats with --fork and stderr not a terminal (a service's log): a line only when bytes moved or
    /// connections opened or closed, never the same line again while the server is idle.
    /// </summary>
    [Test, CancelAfter(30_000)]
    public async Task StatsOfAnIdleForkServerAreQuiet(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        await using var echo = new UnixEchoServer(dir["echo.sock"], 512, cancellationToken);
        await using var bridge = BridgeProcess.Start("--fork", "--stats", "tcp-listen:127.0.0.1:0", $"unix:{echo.Path}");
        int port = await bridge.WaitTcpPortAsync(cancellationToken);

        using (var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await client.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
            var stream = new NetworkStream(client, ownsSocket: false);
            await stream.WriteAsync("hello"u8.ToArray(), cancellationToken);
            client.Shutdown(SocketShutdown.Send);
            Assert.That(await new StreamReader(stream).ReadToEndAsync(cancellationToken), Is.EqualTo("hello"));
        }
        await bridge.WaitLineAsync(new Regex(@"(0 open, 1 closed)$"), cancellationToken);
        // Quiet is a property over time: the server stays idle for several of its one-second ticks.
        await Task.Delay(TimeSpan.FromSeconds(3.5), cancellationToken);
        bridge.Signal(Signum.SIGTERM);
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.EqualTo(143), bridge.Stderr);
        await echo.StopAsync();

        // "pipebridge: 10 B 0:00:02 [5 B/s] 0 open, 1 closed": all but the clock and the rate must change.
        string[] states = bridge.Stderr.Split('\n')
            .Select(line => ProgressLine().Match(line))
            .Where(m => m.Success)
            .Select(m => m.Groups[2].Value + "|" + m.Groups[3].Value)
            .ToArray();
        Assert.That(states, Is.Not.Empty, bridge.Stderr);
        Assert.That(states, Is.Unique, bridge.Stderr);
        Assert.That(states[^1], Is.EqualTo("10 B|0 open, 1 closed"), bridge.Stderr);
    }

    [GeneratedRegex(@"^pipebridge: ((\d[^ ]* [^ ]+) \d+:\d\d:\d\d \[ *[^]]+/s\] ?(.*))$")]
    private static partial Regex ProgressLine();

    /// <summary>
    /// -v writes the data to stderr as socat -v does: a "&gt; " header per block from ADDRESS1, "&lt; " per
    /// block back, then the bytes as text (\r spelled out, other control bytes as '.').
    /// </summary>
    [Test, CancelAfter(20_000)]
    public async Task VerboseWritesTheDataLikeSocat(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string socketPath = dir["echo.sock"];
        await using var echo = BridgeProcess.StartSocat($"UNIX-LISTEN:{socketPath}", "EXEC:cat");
        await echo.WaitListeningAsync(cancellationToken);
        await using var bridge = BridgeProcess.Start(["-v", "stdio", $"unix:{socketPath}"], redirectStdio: true);
        await bridge.Process.StandardInput.BaseStream.WriteAsync("hi\r\n\u0001\n"u8.ToArray(), cancellationToken);
        bridge.Process.StandardInput.Close();

        Assert.That(await bridge.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.EqualTo("hi\r\n\u0001\n"));
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        const string header = @"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6}  length=6 from=0 to=5";
        Assert.That(bridge.Stderr, Does.Match($@"(?m)^> {header}\nhi\\r\n\.(\n|$)"));
        Assert.That(bridge.Stderr, Does.Match($@"(?m)^< {header}\nhi\\r\n\.(\n|$)"));
    }

    /// <summary>
    /// -v, -x and both write what socat writes for the same command line (timestamps aside):
    /// <c>-u - /dev/null</c>, a bare path being gopen in both.
    /// </summary>
    [TestCase("-v"), TestCase("-x"), TestCase("-v -x"), CancelAfter(20_000)]
    public async Task DataDumpMatchesSocat(string dump, CancellationToken cancellationToken)
    {
        byte[] input = "hi\r\n\u0001\ttab and a line longer than sixteen bytes\n"u8.ToArray();
        string[] args = [.. dump.Split(' '), "-u", "-", "/dev/null"];
        await using var socat = BridgeProcess.StartProgram("socat", args, redirectStdio: true);
        await using var bridge = BridgeProcess.Start(args, redirectStdio: true);
        foreach (BridgeProcess process in new[] { socat, bridge })
        {
            await process.Process.StandardInput.BaseStream.WriteAsync(input, cancellationToken);
            process.Process.StandardInput.Close();
            Assert.That(await process.WaitExitAsync(cancellationToken), Is.Zero, process.Stderr);
        }
        Assert.That(Timestamps().Replace(bridge.Stderr, "TIME"), Is.EqualTo(Timestamps().Replace(socat.Stderr, "TIME")));
        Assert.That(bridge.Stderr, Does.StartWith("> "));
    }

    /// <summary>-U: ADDRESS2 is read and ADDRESS1 written (socat -U).</summary>
    [Test, CancelAfter(20_000)]
    public async Task ReverseUnidirectional(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string output = dir["out.txt"];
        await using var bridge = BridgeProcess.Start(["-U", $"file:{output}", "STDIO"], redirectStdio: true);
        await bridge.Process.StandardInput.WriteAsync("backwards\n");
        bridge.Process.StandardInput.Close();
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(await File.ReadAllTextAsync(output, cancellationToken), Is.EqualTo("backwards\n"));
    }

    [GeneratedRegex(@"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+")]
    private static partial Regex Timestamps();
}
