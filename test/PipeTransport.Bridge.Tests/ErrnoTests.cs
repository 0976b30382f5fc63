using System.Net;
using System.Net.Sockets;
using NUnit.Framework;

namespace PipeTransport.Bridge.Tests;

/// <summary>I/O errors: exit code 1 and one stderr line naming the address and errno, within a second.</summary>
public sealed class ErrnoTests
{
    [Test, CancelAfter(10_000)]
    public async Task FifoInMissingDirectory(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string path = dir["missing/in"];
        await AssertIoErrorAsync($"pipebridge: fifo:{path}: ", "ENOENT (No such file or directory)", cancellationToken, "-u", $"fifo:{path}", "stdio");
    }

    [Test, CancelAfter(10_000)]
    public async Task TcpListenOnPortInUse(CancellationToken cancellationToken)
    {
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        int port = ((IPEndPoint)taken.LocalEndPoint!).Port;
        await AssertIoErrorAsync($"pipebridge: tcp-listen:127.0.0.1:{port}: ", "EADDRINUSE (Address already in use)", cancellationToken,
            $"tcp-listen:127.0.0.1:{port}", "stdio");
    }

    [Test, CancelAfter(10_000)]
    public async Task UnixListenOnPathInUse(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string path = dir["taken.sock"];
        using var taken = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        taken.Bind(new UnixDomainSocketEndPoint(path));
        taken.Listen();
        await AssertIoErrorAsync($"pipebridge: unix-listen:{path}: ", "EADDRINUSE (Address already in use)", cancellationToken,
            $"unix-listen:{path}", "stdio");
        Assert.That(File.Exists(path), Is.True, "someone else's socket file is left alone");
    }

    [Test, CancelAfter(10_000)]
    public async Task TcpConnectionRefused(CancellationToken cancellationToken)
    {
        // A bound socket that does not listen holds the port and refuses connections.
        using var closed = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        closed.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        int port = ((IPEndPoint)closed.LocalEndPoint!).Port;
        await AssertIoErrorAsync($"pipebridge: tcp:127.0.0.1:{port}: connect: ", "ECONNREFUSED (Connection refused)", cancellationToken,
            "stdio", $"tcp:127.0.0.1:{port}");
    }

    [Test, CancelAfter(10_000)]
    public async Task UnixConnectToMissingPath(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string path = dir["nobody.sock"];
        await AssertIoErrorAsync($"pipebridge: unix:{path}: connect: ", "ENOENT (No such file or directory)", cancellationToken,
            "stdio", $"unix:{path}");
    }

    [Test, CancelAfter(10_000)]
    public async Task FileThatDoesNotExist(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string path = dir["nothing.txt"];
        await AssertIoErrorAsync($"pipebridge: file:{path}: open: ", "ENOENT (No such file or directory)", cancellationToken,
            "-u", $"file:{path}", "stdio");
    }

    [Test, CancelAfter(10_000)]
    public async Task BadFileDescriptor(CancellationToken cancellationToken)
    {
        await AssertIoErrorAsync("pipebridge: fd:917: ", "EBADF (Bad file descriptor)", cancellationToken, "-u", "fd:917", "stdio");
    }

    private static async Task AssertIoErrorAsync(string prefix, string errno, CancellationToken cancellationToken, params string[] args)
    {
        await using var bridge = BridgeProcess.Start(args);
        int exitCode = await bridge.WaitExitAsync(cancellationToken);
        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.EqualTo(1), bridge.Stderr);
            Assert.That(bridge.Stderr, Does.StartWith(prefix).And.EndWith(errno));
            Assert.That(bridge.Stderr.Split('\n'), Has.Length.EqualTo(1), "one line on stderr");
        });
    }
}
