using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Mono.Unix.Native;
using NUnit.Framework;

namespace PipeTransport.Bridge.Tests;

/// <summary>-d levels (socat's), -T (inactivity) and -t (half-close) timeouts, against real peers.</summary>
public sealed partial class DiagnosticsAndTimeoutTests
{
    /// <summary>
    /// -d -d: the listening address, each accepted connection with its peer's address, its bytes each
    /// way when it closes, and the exit status of its child.
    /// </summary>
    [Test, CancelAfter(30_000)]
    public async Task NoticesNameConnectionsBytesAndChildren(CancellationToken cancellationToken)
    {
        await using var bridge = BridgeProcess.Start("-d", "-d", "tcp-listen:127.0.0.1:0,fork", "system:cat; echo bye");
        int port = await bridge.WaitTcpPortAsync(cancellationToken);

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
        int clientPort = ((IPEndPoint)client.LocalEndPoint!).Port;
        var stream = new NetworkStream(client, ownsSocket: false);
        await stream.WriteAsync("hello"u8.ToArray(), cancellationToken);
        client.Shutdown(SocketShutdown.Send);
        Assert.That(await new StreamReader(stream).ReadToEndAsync(cancellationToken), Is.EqualTo("hellobye\n"));

        string peer = $"127.0.0.1:{clientPort}";
        await bridge.WaitLineAsync(new Regex($@"^pipebridge: (accepted connection from {Regex.Escape(peer)} on tcp-listen:127\.0\.0\.1:0,fork)$"), cancellationToken);
        await bridge.WaitLineAsync(new Regex($@"^pipebridge: (closed connection from {Regex.Escape(peer)} after [0-9.]+ s: 5 bytes received, 9 bytes sent)$"), cancellationToken);
        await bridge.WaitLineAsync(new Regex(@"^pipebridge: (system:cat; echo bye \(pid \d+\) exited with status 0)$"), cancellationToken);
        bridge.Signal(Signum.SIGTERM);
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.EqualTo(143), bridge.Stderr);
    }

    /// <summary>Without -d -d a session that goes well prints nothing; with -d alone (warnings) too.</summary>
    [TestCase(), TestCase("-d"), CancelAfter(20_000)]
    public async Task QuietBelowNoticeLevel(params string[] level)
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var bridge = BridgeProcess.Start([.. level, "STDIO", "exec:cat"], redirectStdio: true);
        await bridge.Process.StandardInput.WriteAsync("quiet\n");
        bridge.Process.StandardInput.Close();
        Assert.That(await bridge.Process.StandardOutput.ReadToEndAsync(cancel.Token), Is.EqualTo("quiet\n"));
        Assert.That(await bridge.WaitExitAsync(cancel.Token), Is.Zero);
        Assert.That(bridge.Stderr, Is.Empty);
    }

    /// <summary>
    /// -T 1: a connection that stays open but idle is ended a second after its last byte (the peer sees
    /// EOF), the child is ended, and pipebridge exits 0 as socat does.
    /// </summary>
    [Test, CancelAfter(30_000)]
    public async Task InactivityTimeoutEndsAnIdleSession(CancellationToken cancellationToken)
    {
        await using var bridge = BridgeProcess.Start("-d", "-d", "-T", "1", "tcp-listen:127.0.0.1:0", "exec:cat");
        int port = await bridge.WaitTcpPortAsync(cancellationToken);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
        var stream = new NetworkStream(client, ownsSocket: false);
        await stream.WriteAsync("x"u8.ToArray(), cancellationToken);
        var echo = new byte[1];
        await stream.ReadExactlyAsync(echo, cancellationToken);
        var idle = Stopwatch.StartNew();

        // The client neither sends nor closes: only the timeout can end the session.
        Assert.That(await stream.ReadAsync(new byte[16], cancellationToken), Is.Zero, "EOF from the bridge");
        Assert.That(idle.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromSeconds(0.9)));
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(bridge.Stderr, Does.Contain("inactivity timeout: no data for 1 s (-T)"));
    }

    /// <summary>
    /// -t 0.5: stdin has ended, the child goes on without output (sleeping): half a second later the
    /// session ends and the child is stopped. Without -t pipebridge waits for the child's own EOF.
    /// </summary>
    [Test, CancelAfter(30_000)]
    public async Task HalfCloseTimeoutEndsTheOtherDirection(CancellationToken cancellationToken)
    {
        // exec: SIGTERM reaches sleep itself (a shell's own children would live on, holding stderr).
        const string command = "system:cat; exec sleep 60";
        await using (var bridge = BridgeProcess.Start(["-d", "-d", "-t", "0.5", "STDIO", command], redirectStdio: true))
        {
            await bridge.Process.StandardInput.WriteAsync("hi\n");
            bridge.Process.StandardInput.Close();
            Assert.That(await bridge.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.EqualTo("hi\n"));
            Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
            Assert.That(bridge.Stderr, Does.Contain("half-close timeout: the other direction did not end within 0.5 s (-t)"));
            Assert.That(bridge.Elapsed.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), "the sleeping child did not hold the session");
        }

        await using var patient = BridgeProcess.Start(["STDIO", "system:cat; sleep 0.3; echo late"], redirectStdio: true);
        await patient.Process.StandardInput.WriteAsync("hi\n");
        patient.Process.StandardInput.Close();
        Assert.That(await patient.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.EqualTo("hi\nlate\n"));
        Assert.That(await patient.WaitExitAsync(cancellationToken), Is.Zero, patient.Stderr);
    }

    /// <summary>-t between two sockets: one peer half-closes, the other never does; the session ends anyway.</summary>
    [Test, CancelAfter(30_000)]
    public async Task HalfCloseTimeoutBetweenSockets(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string socketPath = dir["server.sock"];
        using var server = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        server.Bind(new UnixDomainSocketEndPoint(socketPath));
        server.Listen();
        await using var bridge = BridgeProcess.Start(["-t", "0.5", "STDIO", $"unix-connect:{socketPath}"], redirectStdio: true);
        using Socket accepted = await server.AcceptAsync(cancellationToken);

        // The bridge's stdin ends (its peer half-closes); the server keeps its side open and silent.
        await bridge.Process.StandardInput.WriteAsync("ping\n");
        bridge.Process.StandardInput.Close();
        var received = new byte[5];
        await new NetworkStream(accepted, ownsSocket: false).ReadExactlyAsync(received, cancellationToken);
        Assert.That(Encoding.ASCII.GetString(received), Is.EqualTo("ping\n"));
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(await bridge.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.Empty);
    }

    private static IEnumerable<TestCaseData> BadTimeouts()
    {
        yield return new TestCaseData(new[] { "-T", "0", "-", "-" }, "bad timeout '0' for -T");
        yield return new TestCaseData(new[] { "-T", "soon", "-", "-" }, "bad timeout 'soon' for -T");
        yield return new TestCaseData(new[] { "-t", "1e9", "-", "-" }, "bad timeout '1e9' for -t");
    }

    [TestCaseSource(nameof(BadTimeouts)), CancelAfter(10_000)]
    public async Task BadTimeoutExitsWithTwo(string[] args, string expected, CancellationToken cancellationToken)
    {
        await using var bridge = BridgeProcess.Start(args);
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.EqualTo(2));
        Assert.That(bridge.Stderr, Does.StartWith("pipebridge: ").And.Contain(expected));
        Assert.That(bridge.Stderr.Split('\n'), Has.Length.EqualTo(1));
    }
}
