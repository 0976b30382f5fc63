using System.Net;
using System.Net.Sockets;
using NUnit.Framework;

namespace PipeTransport.Kestrel.Tests;

/// <summary>Graceful stop: listeners close first, requests in flight finish, and every fd is returned.</summary>
public sealed class ShutdownTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("ptk-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    /// <summary>This process's fds with what each refers to; finalizers run first so earlier tests' garbage is gone.</summary>
    private static HashSet<string> OpenFds()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var fds = new HashSet<string>();
        foreach (var fd in Directory.GetFiles("/proc/self/fd"))
        {
            try
            {
                var target = new FileInfo(fd).LinkTarget;
                // Assemblies the runtime maps on first use are not connections' fds.
                if (target is not null && !target.StartsWith("/proc/", StringComparison.Ordinal) && !target.EndsWith(".dll", StringComparison.Ordinal))
                {
                    fds.Add($"{Path.GetFileName(fd)} -> {target}");
                }
            }
            catch (IOException)
            {
                // Closed while listing (the directory fd of the listing itself, for one).
            }
        }
        return fds;
    }

    [Test, CancelAfter(30_000)]
    public async Task Stop_WithOpenConnections_InFlightRequestFinishes_IdleOneCloses(CancellationToken ct)
    {
        var path = Path.Combine(_dir, "s.sock");
        var server = await TestServer.StartAsync(k =>
        {
            k.Listen(IPAddress.Loopback, 0);
            k.ListenUnixSocket(path);
        }, ct);
        var port = server.Port;
        using var idle = await RawClient.ConnectAsync(new UnixDomainSocketEndPoint(path), ct);
        await idle.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n", ct);
        Assert.That(RawResponse.Parse(await idle.ReadUntilAsync("\r\n0\r\n\r\n", ct)).Body, Is.EqualTo("hello"));
        using var busy = await RawClient.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), ct);
        await busy.SendAsync("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n", ct);
        await server.Entered.Task.WaitAsync(ct);

        var stop = server.App.StopAsync(ct);
        var idleEnd = await idle.ReadToEndAsync(ct);
        var refused = Assert.ThrowsAsync<SocketException>(async () =>
            (await RawClient.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), ct)).Dispose());
        Assert.That(stop.IsCompleted, Is.False, "stop waits for the request in flight");
        server.Release.TrySetResult();
        var busyResponse = await busy.ReadToEndAsync(ct);
        await stop;
        await server.App.DisposeAsync();

        Assert.That(idleEnd, Is.Empty, "the idle keep-alive connection is closed without a response");
        Assert.That(refused!.SocketErrorCode, Is.EqualTo(SocketError.ConnectionRefused));
        var parsed = RawResponse.Parse(busyResponse);
        Assert.That((parsed.Status, parsed.Headers["Connection"], parsed.Body), Is.EqualTo((200, "close", "done")));
        Assert.That(File.Exists(path), Is.False, "the socket file is removed");
    }

    [TestCase(0), TestCase(2)]
    [CancelAfter(60_000)]
    public async Task AfterStop_NoFdIsLeft(int reactorCount, CancellationToken ct)
    {
        // Warm up what lives for the whole process (the default reactor group, the runtime's socket engine).
        await using (var warm = await TestServer.StartAsync(k => k.Listen(IPAddress.Loopback, 0), ct))
        {
            using var client = warm.CreateTcpClient();
            await client.GetStringAsync("/", ct);
        }
        var before = OpenFds();

        var path = Path.Combine(_dir, "s.sock");
        var server = await TestServer.StartAsync(k =>
        {
            k.Listen(IPAddress.Loopback, 0);
            k.ListenUnixSocket(path);
        }, ct, o => o.ReactorCount = reactorCount);
        using (var tcp = server.CreateTcpClient())
        using (var unix = TestServer.CreateUnixClient(path))
        {
            await Task.WhenAll(Enumerable.Range(0, 50).Select(i => (i % 2 == 0 ? tcp : unix).GetStringAsync("/id", ct)));
        }
        using (var reset = await RawClient.ConnectAsync(new IPEndPoint(IPAddress.Loopback, server.Port), ct))
        {
            await reset.SendAsync("GET /large HTTP/1.1\r\nHost: x\r\n\r\n", ct);
            await reset.ReadAtLeastAsync(1, ct);
            reset.Reset();
        }
        using var open = await RawClient.ConnectAsync(new IPEndPoint(IPAddress.Loopback, server.Port), ct);
        await open.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n", ct);
        await open.ReadAtLeastAsync(1, ct);
        await server.DisposeAsync();
        open.Dispose();

        var leaked = OpenFds().Except(before).ToArray();
        Assert.That(leaked, Is.Empty);
    }

    [Test, CancelAfter(30_000)]
    public async Task StopTwiceAndDispose_AreHarmless(CancellationToken ct)
    {
        var server = await TestServer.StartAsync(k => k.Listen(IPAddress.Loopback, 0), ct);

        await server.App.StopAsync(ct);
        await server.App.StopAsync(ct);
        await server.DisposeAsync();

        Assert.Pass();
    }
}
