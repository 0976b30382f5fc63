using System.Net;
using System.Net.Sockets;
using System.Text;
using NUnit.Framework;

namespace PipeTransport.Bridge.Tests;

/// <summary>Command lines that socat users type, behaving as they do under socat.</summary>
public sealed class SocatParityTests
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
        await using var bridge = BridgeProcess.Start("-v", "--engine", engine, "tcp-listen:127.0.0.1:0", $"fifo:{loop}!!fifo:{loop}");
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
}
