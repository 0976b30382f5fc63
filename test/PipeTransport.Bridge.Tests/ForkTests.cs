using System.Net;
using System.Net.Sockets;
using Mono.Unix.Native;
using NUnit.Framework;

namespace PipeTransport.Bridge.Tests;

/// <summary>--fork: one listener, many concurrent connections, each bridged to a fresh ADDRESS2.</summary>
[TestFixture("copy")]
[TestFixture("splice")]
public sealed class ForkTests(string engine)
{
    private const int Clients = 50;
    private const long PerClient = 256 * 1024;

    [Test, CancelAfter(60_000)]
    public async Task FiftyConcurrentClientsThroughTcpToUnixEcho(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        await using var echo = new UnixEchoServer(dir["echo.sock"], 128, cancellationToken);

        await using var bridge = BridgeProcess.Start("--fork", "-d", "-d", "--engine", engine, "tcp-listen:127.0.0.1:0", $"unix:{echo.Path}");
        int port = await bridge.WaitTcpPortAsync(cancellationToken);

        await Task.WhenAll(Enumerable.Range(0, Clients).Select(async client =>
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
            var stream = new NetworkStream(socket, ownsSocket: false);
            Task<byte[]> sent = IntegrityTests.SendThenShutdownAsync(socket, stream, PerClient, 100 + client, cancellationToken);
            var (length, hash) = await TestData.ReadAsync(stream, cancellationToken, close: false);
            Assert.That(length, Is.EqualTo(PerClient), $"client {client}");
            Assert.That(hash, Is.EqualTo(await sent), $"client {client}");
        }));

        Assert.That(bridge.Process.HasExited, Is.False, "the listener keeps serving");
        bridge.Signal(Signum.SIGTERM);
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.EqualTo(143), bridge.Stderr);
        Assert.That(bridge.Stderr, Does.Not.Contain("pipebridge: tcp"), "no connection reported an error");
        await echo.StopAsync();
    }

    /// <summary>
    /// SIGTERM with every session open and idle: the stop aborts their connections while their engines see
    /// the stop, and whichever comes first, a session ends without reporting an error. A race: several rounds.
    /// </summary>
    [Test, CancelAfter(90_000)]
    public async Task AStopWithSessionsOpenReportsNoError(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        await using var echo = new UnixEchoServer(dir["echo.sock"], 128, cancellationToken);

        for (int round = 0; round < 12; round++)
        {
            await using var bridge = BridgeProcess.Start("--fork", "--engine", engine, "-d", "-d", "tcp-listen:127.0.0.1:0", $"unix:{echo.Path}");
            int port = await bridge.WaitTcpPortAsync(cancellationToken);
            var clients = new List<Socket>();
            try
            {
                for (int i = 0; i < 64; i++)
                {
                    var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                    clients.Add(socket);
                    await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
                    await socket.SendAsync(new byte[] { (byte)i }, cancellationToken);
                    byte[] echoed = new byte[1];
                    Assert.That(await socket.ReceiveAsync(echoed, cancellationToken), Is.EqualTo(1)); // the session is bridging
                }

                bridge.Signal(Signum.SIGTERM);
                Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.EqualTo(143), bridge.Stderr);
                Assert.That(bridge.Stderr, Does.Not.Contain("pipebridge: tcp"), $"round {round}: a session reported the stop as an error");
            }
            finally
            {
                clients.ForEach(c => c.Dispose());
            }
        }

        await echo.StopAsync();
    }
}
