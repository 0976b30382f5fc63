using System.Net;
using System.Net.Sockets;
using NUnit.Framework;

namespace PipeTransport.Bridge.Tests;

/// <summary>Pseudo-random data through the bridge, hashes compared, in each engine.</summary>
[TestFixture("copy")]
[TestFixture("splice")]
public sealed class IntegrityTests(string engine)
{
    [Test, CancelAfter(60_000)]
    public async Task OneGibFifoToFifo(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string input = dir.Fifo("in"), output = dir.Fifo("out");
        await using var bridge = BridgeProcess.Start("-u", "--engine", engine, "-b", "1m", $"fifo:{input}", $"fifo:{output}");

        Task<byte[]> written = Task.Run(async () =>
            await TestData.WriteAsync(await FifoStream.OpenAsync(input, FileAccess.Write, cancellationToken), TestData.GiB, 1, cancellationToken));
        var (length, hash) = await TestData.ReadAsync(await FifoStream.OpenAsync(output, FileAccess.Read, cancellationToken), cancellationToken);

        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(length, Is.EqualTo(TestData.GiB));
        Assert.That(hash, Is.EqualTo(await written));
    }

    /// <summary>The final reader leaves mid-stream: exit 1 and one line naming the destination and EPIPE.</summary>
    [Test, CancelAfter(20_000)]
    public async Task AReaderThatLeavesEndsWithEpipe(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string input = dir.Fifo("in"), output = dir.Fifo("out");
        await using var bridge = BridgeProcess.Start("-u", "--engine", engine, $"fifo:{input}", $"fifo:{output}");
        Task writing = Task.Run(async () =>
        {
            try
            {
                await TestData.WriteAsync(await FifoStream.OpenAsync(input, FileAccess.Write, cancellationToken), TestData.GiB, 3, cancellationToken);
            }
            catch (IOException)
            {
                // EPIPE once the bridge has gone.
            }
        }, cancellationToken);
        await using (Stream reader = await FifoStream.OpenAsync(output, FileAccess.Read, cancellationToken))
        {
            byte[] some = new byte[1 << 20];
            await reader.ReadExactlyAsync(some, cancellationToken);
        }

        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.EqualTo(1), bridge.Stderr);
        string operation = engine == "splice" ? "splice" : "write";
        Assert.That(bridge.Stderr, Is.EqualTo($"pipebridge: fifo:{output}: {operation}: EPIPE (Broken pipe)"));
        await writing;
    }

    [Test, CancelAfter(30_000)]
    public async Task FifoToTcpListen(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string input = dir.Fifo("in");
        await using var bridge = BridgeProcess.Start("-u", "-d", "-d", "--engine", engine, $"fifo:{input}", "tcp-listen:127.0.0.1:0");
        int port = await bridge.WaitTcpPortAsync(cancellationToken);

        Task<byte[]> written = Task.Run(async () =>
            await TestData.WriteAsync(await FifoStream.OpenAsync(input, FileAccess.Write, cancellationToken), 64 * TestData.MiB, 2, cancellationToken));
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
        var (length, hash) = await TestData.ReadAsync(new NetworkStream(client, ownsSocket: false), cancellationToken);

        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(length, Is.EqualTo(64 * TestData.MiB));
        Assert.That(hash, Is.EqualTo(await written));
    }

    /// <summary>A regular file to a Unix socket: sendfile in the splice engine (and auto), read/write in copy.</summary>
    [Test, CancelAfter(30_000)]
    public async Task FileToUnixConnect(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string input = dir["in.bin"], socketPath = dir["sink.sock"];
        byte[] data = new byte[48 * TestData.MiB + 777];
        new Random(5).NextBytes(data);
        await File.WriteAllBytesAsync(input, data, cancellationToken);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(1);

        await using var bridge = BridgeProcess.Start("-u", "--engine", engine, $"file:{input}", $"unix:{socketPath}");
        using Socket sink = await listener.AcceptAsync(cancellationToken);
        var (length, hash) = await TestData.ReadAsync(new NetworkStream(sink, ownsSocket: false), cancellationToken);

        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(length, Is.EqualTo(data.Length));
        Assert.That(hash, Is.EqualTo(System.Security.Cryptography.SHA256.HashData(data)));
    }

    /// <summary>Both directions at once; each side half-closes when done and still receives the other's data.</summary>
    [Test, CancelAfter(30_000)]
    public async Task UnixListenToTcpBothWays(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string socketPath = dir["bridge.sock"];
        using var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        server.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        server.Listen();
        int port = ((IPEndPoint)server.LocalEndPoint!).Port;
        await using var bridge = BridgeProcess.Start("-d", "-d", "--engine", engine, $"unix-listen:{socketPath}", $"tcp:127.0.0.1:{port}");
        await bridge.WaitListeningAsync(cancellationToken);

        using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await client.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
        using Socket accepted = await server.AcceptAsync(cancellationToken);

        const long size = 64 * TestData.MiB;
        var clientStream = new NetworkStream(client, ownsSocket: false);
        var serverStream = new NetworkStream(accepted, ownsSocket: false);
        Task<byte[]> clientSent = SendThenShutdownAsync(client, clientStream, size, 3, cancellationToken);
        Task<byte[]> serverSent = SendThenShutdownAsync(accepted, serverStream, size / 2, 4, cancellationToken);
        Task<(long, byte[])> serverReceived = TestData.ReadAsync(serverStream, cancellationToken, close: false);
        Task<(long, byte[])> clientReceived = TestData.ReadAsync(clientStream, cancellationToken, close: false);

        var (toServerLength, toServerHash) = await serverReceived;
        var (toClientLength, toClientHash) = await clientReceived;
        Assert.That(toServerLength, Is.EqualTo(size));
        Assert.That(toServerHash, Is.EqualTo(await clientSent));
        Assert.That(toClientLength, Is.EqualTo(size / 2));
        Assert.That(toClientHash, Is.EqualTo(await serverSent));
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(File.Exists(socketPath), Is.False, "the socket file it created is removed");
    }

    internal static async Task<byte[]> SendThenShutdownAsync(Socket socket, Stream stream, long size, int seed, CancellationToken cancellationToken)
    {
        byte[] hash = await TestData.WriteAsync(stream, size, seed, cancellationToken, close: false);
        socket.Shutdown(SocketShutdown.Send);
        return hash;
    }
}
