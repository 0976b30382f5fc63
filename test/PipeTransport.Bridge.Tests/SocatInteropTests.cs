using System.Net.Sockets;
using NUnit.Framework;

namespace PipeTransport.Bridge.Tests;

/// <summary>socat on the other side of each socket kind, as client and as server; data hashed end to end.</summary>
[TestFixture("copy")]
[TestFixture("splice")]
public sealed class SocatInteropTests(string engine)
{
    private const long Size = 32 * TestData.MiB;

    [Test, CancelAfter(30_000)]
    public async Task SocatTcpClientReadsFromTcpListen(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string input = dir.Fifo("in");
        await using var bridge = BridgeProcess.Start("-u", "-d", "-d", "--engine", engine, $"fifo:{input}", "tcp-listen:127.0.0.1:0");
        int port = await bridge.WaitTcpPortAsync(cancellationToken);
        await using var socat = BridgeProcess.StartSocat("-u", $"TCP:127.0.0.1:{port}", "STDOUT");
        await AssertFifoToSocatAsync(input, bridge, socat, cancellationToken);
    }

    [Test, CancelAfter(30_000)]
    public async Task SocatUnixClientReadsFromUnixListen(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string input = dir.Fifo("in");
        string socketPath = dir["s.sock"];
        await using var bridge = BridgeProcess.Start("-u", "-d", "-d", "--engine", engine, $"fifo:{input}", $"unix-listen:{socketPath}");
        await bridge.WaitListeningAsync(cancellationToken);
        await using var socat = BridgeProcess.StartSocat("-u", $"UNIX-CONNECT:{socketPath}", "STDOUT");
        await AssertFifoToSocatAsync(input, bridge, socat, cancellationToken);
    }

    [Test, CancelAfter(30_000)]
    public async Task TcpConnectReadsFromSocatServer(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string output = dir.Fifo("out");
        await using var socat = BridgeProcess.StartSocat("-u", "STDIN", "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr");
        int port = await socat.WaitTcpPortAsync(cancellationToken);
        await using var bridge = BridgeProcess.Start("-u", "--engine", engine, $"tcp:127.0.0.1:{port}", $"fifo:{output}");
        await AssertSocatToFifoAsync(output, bridge, socat, cancellationToken);
    }

    [Test, CancelAfter(30_000)]
    public async Task UnixConnectReadsFromSocatServer(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string output = dir.Fifo("out");
        string socketPath = dir["s.sock"];
        await using var socat = BridgeProcess.StartSocat("-u", "STDIN", $"UNIX-LISTEN:{socketPath}");
        await socat.WaitListeningAsync(cancellationToken);
        await using var bridge = BridgeProcess.Start("-u", "--engine", engine, $"unix:{socketPath}", $"fifo:{output}");
        await AssertSocatToFifoAsync(output, bridge, socat, cancellationToken);
    }

    /// <summary>
    /// Echo through the bridge: TCP client → pipebridge → socat Unix server running cat. The client's
    /// FIN must travel to cat (half-close) and the echo must still come back in full, then EOF.
    /// </summary>
    [Test, CancelAfter(30_000)]
    public async Task HalfCloseTravelsBothWaysThroughSocatEcho(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string socketPath = dir["echo.sock"];
        await using var echo = BridgeProcess.StartSocat($"UNIX-LISTEN:{socketPath}", "EXEC:cat");
        await echo.WaitListeningAsync(cancellationToken);
        await using var bridge = BridgeProcess.Start("-d", "-d", "--engine", engine, "tcp-listen:127.0.0.1:0", $"unix:{socketPath}");
        int port = await bridge.WaitTcpPortAsync(cancellationToken);

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port), cancellationToken);
        var stream = new NetworkStream(client, ownsSocket: false);
        Task<byte[]> sent = IntegrityTests.SendThenShutdownAsync(client, stream, Size, 5, cancellationToken);
        var (length, hash) = await TestData.ReadAsync(stream, cancellationToken, close: false);

        Assert.That(length, Is.EqualTo(Size));
        Assert.That(hash, Is.EqualTo(await sent));
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(await echo.WaitExitAsync(cancellationToken), Is.Zero, echo.Stderr);
    }

    private static async Task AssertFifoToSocatAsync(string input, BridgeProcess bridge, BridgeProcess socat, CancellationToken cancellationToken)
    {
        socat.Process.StandardInput.Close();
        Task<byte[]> written = Task.Run(async () =>
            await TestData.WriteAsync(await FifoStream.OpenAsync(input, FileAccess.Write, cancellationToken), Size, 6, cancellationToken));
        var (length, hash) = await TestData.ReadAsync(socat.Process.StandardOutput.BaseStream, cancellationToken);
        Assert.That(length, Is.EqualTo(Size));
        Assert.That(hash, Is.EqualTo(await written));
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(await socat.WaitExitAsync(cancellationToken), Is.Zero, socat.Stderr);
    }

    private static async Task AssertSocatToFifoAsync(string output, BridgeProcess bridge, BridgeProcess socat, CancellationToken cancellationToken)
    {
        Task<byte[]> written = TestData.WriteAsync(socat.Process.StandardInput.BaseStream, Size, 7, cancellationToken);
        var (length, hash) = await TestData.ReadAsync(await FifoStream.OpenAsync(output, FileAccess.Read, cancellationToken), cancellationToken);
        Assert.That(length, Is.EqualTo(Size));
        Assert.That(hash, Is.EqualTo(await written));
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(await socat.WaitExitAsync(cancellationToken), Is.Zero, socat.Stderr);
    }
}
