using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Mono.Unix.Native;
using NUnit.Framework;

namespace PipeTransport.Bridge.Tests;

/// <summary>
/// --handoff: a forking bridge is replaced by a new pipebridge process while clients keep connecting;
/// the new one takes the listening socket over, so no connect fails, and the old one lets its sessions
/// end and exits 0.
/// </summary>
public sealed partial class HandOffTests
{
    private const int Upgrades = 3;
    private const int Clients = 8;

    [TestCase("unix"), TestCase("tcp")]
    [CancelAfter(180_000)]
    public async Task ForkingBridge_UpgradedInPlace_NoConnectFails(string kind, CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string handOff = dir["handoff.sock"];
        EndPoint endPoint = kind == "unix" ? new UnixDomainSocketEndPoint(dir["echo.sock"]) : new IPEndPoint(IPAddress.Loopback, FreePort());
        string listen = kind == "unix" ? $"unix-listen:{dir["echo.sock"]},fork" : $"tcp-listen:127.0.0.1:{((IPEndPoint)endPoint).Port},fork";
        string[] args = ["-d", "-d", "--handoff", handOff, listen, "exec:cat"];
        var bridges = new List<BridgeProcess>();
        try
        {
            BridgeProcess current = BridgeProcess.Start(args);
            bridges.Add(current);
            await current.WaitLineAsync(Serving(), cancellationToken);

            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            long exchanges = 0;
            var failures = new List<string>();
            Task[] clients = [.. Enumerable.Range(0, Clients).Select(client => Task.Run(async () =>
            {
                for (int i = 0; !stop.IsCancellationRequested; i++)
                {
                    try
                    {
                        string line = $"client {client} exchange {i}\n";
                        Assert.That(await EchoAsync(endPoint, line, cancellationToken), Is.EqualTo(line));
                        Interlocked.Increment(ref exchanges);
                    }
                    catch (Exception e) when (e is SocketException or IOException)
                    {
                        lock (failures) failures.Add(e.Message);
                    }
                }
            }, cancellationToken))];

            for (int upgrade = 0; upgrade < Upgrades; upgrade++)
            {
                // A session that stays open across the upgrade: the old bridge serves it to its end.
                using var longSession = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Unspecified);
                await longSession.ConnectAsync(endPoint, cancellationToken);
                await EchoLineAsync(longSession, "before\n", cancellationToken);

                BridgeProcess next = BridgeProcess.Start(args);
                bridges.Add(next);
                await next.WaitLineAsync(Serving(), cancellationToken);
                await current.WaitLineAsync(HandedOver(), cancellationToken);
                Assert.That(current.Process.HasExited, Is.False, "the old bridge waits for its open session");

                await EchoLineAsync(longSession, "after\n", cancellationToken);
                longSession.Shutdown(SocketShutdown.Send);
                Assert.That(await longSession.ReceiveAsync(new byte[16], cancellationToken), Is.Zero);
                Assert.That(await current.WaitExitAsync(cancellationToken), Is.Zero, current.Stderr);
                current = next;
            }

            await stop.CancelAsync();
            await Task.WhenAll(clients);
            await TestContext.Out.WriteLineAsync($"pipebridge --handoff ({kind}): {Upgrades} upgrades, {exchanges} connections, {failures.Count} failed");
            Assert.That(failures, Is.Empty);
            Assert.That(exchanges, Is.GreaterThan(0));
            current.Signal(Signum.SIGTERM);
            Assert.That(await current.WaitExitAsync(cancellationToken), Is.EqualTo(143), current.Stderr);
            foreach (BridgeProcess bridge in bridges)
            {
                Assert.That(bridge.Stderr, Does.Not.Contain("pipebridge: unix").And.Not.Contain("pipebridge: tcp"), "no session reported an error");
            }
        }
        finally
        {
            foreach (BridgeProcess bridge in bridges)
            {
                await bridge.DisposeAsync();
            }
        }
    }

    [Test, CancelAfter(60_000)]
    public async Task SingleSessionBridge_HandsOverWhileItsSessionRuns(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        var endPoint = new UnixDomainSocketEndPoint(dir["echo.sock"]);
        string[] args = ["-d", "-d", "--handoff", dir["handoff.sock"], $"unix-listen:{dir["echo.sock"]}", "exec:cat"];
        await using BridgeProcess old = BridgeProcess.Start(args);
        await old.WaitLineAsync(Serving(), cancellationToken);
        using var session = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await session.ConnectAsync(endPoint, cancellationToken);
        await EchoLineAsync(session, "first\n", cancellationToken);

        await using BridgeProcess successor = BridgeProcess.Start(args);
        await successor.WaitLineAsync(Serving(), cancellationToken);
        await old.WaitLineAsync(HandedOver(), cancellationToken);
        await EchoLineAsync(session, "still the old one\n", cancellationToken);
        session.Shutdown(SocketShutdown.Send);
        Assert.That(await session.ReceiveAsync(new byte[16], cancellationToken), Is.Zero);
        Assert.That(await old.WaitExitAsync(cancellationToken), Is.Zero, old.Stderr);

        Assert.That(await EchoAsync(endPoint, "second\n", cancellationToken), Is.EqualTo("second\n"));
        Assert.That(await successor.WaitExitAsync(cancellationToken), Is.Zero, successor.Stderr);
    }

    /// <summary>Connects, sends <paramref name="line"/>, half-closes and reads the echo to its end.</summary>
    private static async Task<string> EchoAsync(EndPoint endPoint, string line, CancellationToken cancellationToken)
    {
        using var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(endPoint, cancellationToken);
        await socket.SendAsync(Encoding.ASCII.GetBytes(line), cancellationToken);
        socket.Shutdown(SocketShutdown.Send);
        var echoed = new MemoryStream();
        var buffer = new byte[256];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, cancellationToken)) > 0)
        {
            echoed.Write(buffer, 0, n);
        }
        return Encoding.ASCII.GetString(echoed.ToArray());
    }

    private static async Task EchoLineAsync(Socket socket, string line, CancellationToken cancellationToken)
    {
        await socket.SendAsync(Encoding.ASCII.GetBytes(line), cancellationToken);
        var echoed = new byte[line.Length];
        int read = 0;
        while (read < echoed.Length)
        {
            int n = await socket.ReceiveAsync(echoed.AsMemory(read), cancellationToken);
            Assert.That(n, Is.Positive, "the echo ended early");
            read += n;
        }
        Assert.That(Encoding.ASCII.GetString(echoed), Is.EqualTo(line));
    }

    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    [GeneratedRegex(@"--handoff .*: (serving) hand-off")]
    private static partial Regex Serving();

    [GeneratedRegex(@"--handoff .*: (handed) .* over to pid")]
    private static partial Regex HandedOver();
}
