using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using Mono.Unix.Native;
using NUnit.Framework;

namespace PipeTransport.Kestrel.Tests;

/// <summary>A real WebApplication on PipeTransport, called by HttpClient (TCP and Unix socket) and curl.</summary>
public sealed class HttpTests
{
    private const long HundredMiB = 100L * 1024 * 1024;
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("ptk-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string SocketPath => Path.Combine(_dir, "http.sock");

    private Task<TestServer> StartTcpAndUnixAsync(CancellationToken ct, Action<PipeTransportOptions>? configure = null) =>
        TestServer.StartAsync(k =>
        {
            k.Listen(IPAddress.Loopback, 0);
            k.ListenUnixSocket(SocketPath);
        }, ct, configure);

    private HttpClient CreateClient(TestServer server, string kind) =>
        kind == "tcp" ? server.CreateTcpClient() : TestServer.CreateUnixClient(SocketPath);

    [TestCase("tcp"), TestCase("unix")]
    [CancelAfter(20_000)]
    public async Task Get_ServedByPipeTransport(string kind, CancellationToken ct)
    {
        await using var server = await StartTcpAndUnixAsync(ct);
        using var client = CreateClient(server, kind);

        Assert.That(await client.GetStringAsync("/", ct), Is.EqualTo("hello"));
        Assert.That(await client.GetStringAsync("/transport", ct), Is.EqualTo("pipe"));
        Assert.That(server.Logs.AtLeast(LogLevel.Warning), Is.Empty);
    }

    [Test, CancelAfter(20_000)]
    public async Task ServerAddresses_ReportBoundPortAndSocketPath(CancellationToken ct)
    {
        await using var server = await StartTcpAndUnixAsync(ct);

        Assert.That(server.Port, Is.Positive);
        Assert.That(server.Addresses, Does.Contain($"http://unix:{SocketPath}"));
        Assert.That(File.GetUnixFileMode(SocketPath), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
    }

    [Test, CancelAfter(20_000)]
    public async Task UnixSocketFileMode_IsApplied(CancellationToken ct)
    {
        var mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;
        await using var server = await StartTcpAndUnixAsync(ct, o => o.UnixSocketFileMode = mode);

        Assert.That(File.GetUnixFileMode(SocketPath), Is.EqualTo(mode));
    }

    [TestCase("tcp"), TestCase("unix")]
    [CancelAfter(60_000)]
    public async Task Post100MiB_ServerHashMatches(string kind, CancellationToken ct)
    {
        await using var server = await StartTcpAndUnixAsync(ct);
        using var client = CreateClient(server, kind);

        using var response = await client.PostAsync("/sha256", new TestData.Content(HundredMiB, 7), ct);

        Assert.That(await response.Content.ReadAsStringAsync(ct), Is.EqualTo($"{HundredMiB}:{TestData.Sha256(HundredMiB, 7)}"));
    }

    [TestCase("tcp", int.MaxValue), TestCase("unix", int.MaxValue)]
    [TestCase("tcp", 64 * 1024), TestCase("unix", 64 * 1024)]
    [CancelAfter(60_000)]
    public async Task Get100MiB_ClientHashMatches(string kind, int poolSendThreshold, CancellationToken ct)
    {
        // int.MaxValue (the default): every response flush is written inside Kestrel's flush; 64 KiB:
        // Kestrel's large flushes are written from a pool thread.
        await using var server = await StartTcpAndUnixAsync(ct, o => o.ConnectionOptions.PoolSendThreshold = poolSendThreshold);
        using var client = CreateClient(server, kind);

        using var response = await client.GetAsync($"/bytes/{HundredMiB}", HttpCompletionOption.ResponseHeadersRead, ct);
        await using var body = await response.Content.ReadAsStreamAsync(ct);
        var (length, hash) = await HashAsync(body, ct);

        Assert.That((length, hash), Is.EqualTo((HundredMiB, TestData.Sha256(HundredMiB, 42))));
    }

    [TestCase("tcp"), TestCase("unix")]
    [CancelAfter(20_000)]
    public async Task KeepAlive_ReusesTheConnection(string kind, CancellationToken ct)
    {
        await using var server = await StartTcpAndUnixAsync(ct);
        using var client = CreateClient(server, kind);

        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            ids.Add(await client.GetStringAsync("/id", ct));
        }

        Assert.That(ids.Distinct().Count(), Is.EqualTo(1), string.Join(",", ids));
        Assert.That(ids[0], Has.Length.EqualTo(13));
    }

    [TestCase("tcp"), TestCase("unix")]
    [CancelAfter(60_000)]
    public async Task TwoHundredConcurrentRequests_EachOnItsOwnConnection(string kind, CancellationToken ct)
    {
        await using var server = await StartTcpAndUnixAsync(ct);
        using var client = CreateClient(server, kind);

        var ids = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => client.GetStringAsync("/gather", ct)));

        Assert.That(ids.Distinct().Count(), Is.EqualTo(200));
    }

    [TestCase("tcp"), TestCase("unix")]
    [CancelAfter(30_000)]
    public async Task Http2PriorKnowledge_Cleartext(string kind, CancellationToken ct)
    {
        await using var server = await TestServer.StartAsync(k =>
        {
            k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http2);
            k.ListenUnixSocket(SocketPath, o => o.Protocols = HttpProtocols.Http2);
        }, ct);
        using var client = CreateClient(server, kind);
        client.DefaultRequestVersion = HttpVersion.Version20;
        client.DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact;

        using var response = await client.GetAsync("/transport", ct);
        var ids = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => client.GetStringAsync("/id", ct)));
        using var post = await client.PostAsync("/sha256", new TestData.Content(8L << 20, 3), ct);

        Assert.That(response.Version, Is.EqualTo(HttpVersion.Version20));
        Assert.That(await response.Content.ReadAsStringAsync(ct), Is.EqualTo("pipe"));
        Assert.That(ids.Distinct().Count(), Is.EqualTo(1), "20 streams multiplexed on one connection");
        Assert.That(await post.Content.ReadAsStringAsync(ct), Is.EqualTo($"{8L << 20}:{TestData.Sha256(8L << 20, 3)}"));
    }

    [Test, CancelAfter(20_000)]
    public async Task WebSocket_Echoes(CancellationToken ct)
    {
        await using var server = await StartTcpAndUnixAsync(ct);
        using var ws = new ClientWebSocket();
        await ws.ConnectAsync(new Uri($"ws://127.0.0.1:{server.Port}/ws"), ct);

        var received = new List<string>();
        var buffer = new byte[256 * 1024];
        foreach (var message in new[] { "one", "two", new string('x', 200_000) })
        {
            await ws.SendAsync(Encoding.UTF8.GetBytes(message), WebSocketMessageType.Text, endOfMessage: true, ct);
            var text = new StringBuilder();
            WebSocketReceiveResult result;
            do
            {
                result = await ws.ReceiveAsync(buffer, ct);
                text.Append(Encoding.UTF8.GetString(buffer, 0, result.Count));
            }
            while (!result.EndOfMessage);
            received.Add(text.ToString());
        }
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", ct);

        Assert.That(received, Is.EqualTo(new[] { "one", "two", new string('x', 200_000) }));
        Assert.That(ws.CloseStatus, Is.EqualTo(WebSocketCloseStatus.NormalClosure));
    }

    [Test, CancelAfter(20_000)]
    public async Task PeerCredentials_ShowTheCallersUid(CancellationToken ct)
    {
        await using var server = await StartTcpAndUnixAsync(ct);
        using var unix = TestServer.CreateUnixClient(SocketPath);
        using var tcp = server.CreateTcpClient();

        Assert.That(await unix.GetStringAsync("/uid", ct), Is.EqualTo($"{Syscall.getuid()}:{Environment.ProcessId}"));
        Assert.That(await tcp.GetStringAsync("/uid", ct), Is.EqualTo("none"));
    }

    [Test, CancelAfter(30_000)]
    public async Task Curl_OverUnixSocket_GetAndPost100MiB(CancellationToken ct)
    {
        await using var server = await StartTcpAndUnixAsync(ct);
        var upload = Path.Combine(_dir, "upload.bin");
        var download = Path.Combine(_dir, "download.bin");
        await using (var file = File.Create(upload))
        {
            await new TestData.Content(HundredMiB, 9).CopyToAsync(file, ct);
        }

        var get = await ProcessRunner.RunAsync("curl", ["-sS", "--unix-socket", SocketPath, "http://localhost/"], ct);
        var post = await ProcessRunner.RunAsync("curl", ["-sS", "--unix-socket", SocketPath, "--data-binary", "@" + upload, "http://localhost/sha256"], ct);
        var big = await ProcessRunner.RunAsync("curl", ["-sS", "--unix-socket", SocketPath, "-o", download, $"http://localhost/bytes/{HundredMiB}"], ct);

        Assert.That(get, Is.EqualTo((0, "hello", "")));
        Assert.That(post, Is.EqualTo((0, $"{HundredMiB}:{TestData.Sha256(HundredMiB, 9)}", "")));
        Assert.That(big.ExitCode, Is.Zero, big.Stderr);
        await using var downloaded = File.OpenRead(download);
        Assert.That(await HashAsync(downloaded, ct), Is.EqualTo((HundredMiB, TestData.Sha256(HundredMiB, 42))));
    }

    [Test, CancelAfter(20_000)]
    public async Task Curl_OverTcp_Get(CancellationToken ct)
    {
        await using var server = await StartTcpAndUnixAsync(ct);

        var get = await ProcessRunner.RunAsync("curl", ["-sS", $"http://127.0.0.1:{server.Port}/transport"], ct);

        Assert.That(get, Is.EqualTo((0, "pipe", "")));
    }

    [Test, CancelAfter(20_000)]
    public async Task ListenAnyIP_IsDualStack(CancellationToken ct)
    {
        await using var server = await TestServer.StartAsync(k => k.ListenAnyIP(0), ct);
        var port = new Uri(server.Addresses.Single()).Port;
        using var v4 = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
        using var v6 = new HttpClient { BaseAddress = new Uri($"http://[::1]:{port}/") };

        Assert.That(await v4.GetStringAsync("/transport", ct), Is.EqualTo("pipe"));
        Assert.That(await v6.GetStringAsync("/transport", ct), Is.EqualTo("pipe"));
    }

    [Test, CancelAfter(20_000)]
    public async Task ListenHandle_ServesAnInheritedListeningSocket(CancellationToken ct)
    {
        // What systemd socket activation hands over: an fd that is already bound and listening.
        int fd;
        int port;
        using (var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            socket.Listen(16);
            port = ((IPEndPoint)socket.LocalEndPoint!).Port;
            fd = Syscall.dup((int)socket.Handle);
        }
        Assert.That(fd, Is.GreaterThan(2));

        await using var server = await TestServer.StartAsync(k => k.ListenHandle((ulong)fd), ct);
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };

        Assert.That(await client.GetStringAsync("/transport", ct), Is.EqualTo("pipe"));
    }

    [Test, CancelAfter(20_000)]
    public void OtherEndPoints_AreLeftToOtherTransports(CancellationToken ct)
    {
        var factory = new PipeTransportFactory(Microsoft.Extensions.Options.Options.Create(new PipeTransportOptions()));

        Assert.That(factory.CanBind(new IPEndPoint(IPAddress.Loopback, 0)), Is.True);
        Assert.That(factory.CanBind(new UnixDomainSocketEndPoint("/tmp/x")), Is.True);
        Assert.That(factory.CanBind(new FileHandleEndPoint(3, FileHandleType.Auto)), Is.True);
        Assert.That(factory.CanBind(new FifoEndPoint("/tmp/a", "/tmp/b")), Is.True);
        Assert.That(factory.CanBind(new NamedPipeEndPoint("pipe")), Is.False);
        Assert.That(factory.CanBind(new DnsEndPoint("localhost", 80)), Is.False);
    }

    [Test, CancelAfter(30_000)]
    public async Task InlineSchedulingAndOwnReactors_StillServe(CancellationToken ct)
    {
        await using var server = await StartTcpAndUnixAsync(ct, o =>
        {
            o.ReactorCount = 2;
            o.UnsafePreferInlineScheduling = true;
            o.ConnectionOptions.InputPauseThreshold = 64 * 1024;
            o.ConnectionOptions.InputResumeThreshold = 32 * 1024;
        });
        using var client = server.CreateTcpClient();

        using var response = await client.PostAsync("/sha256", new TestData.Content(16L << 20, 5), ct);
        var ids = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => client.GetStringAsync("/id", ct)));

        Assert.That(await response.Content.ReadAsStringAsync(ct), Is.EqualTo($"{16L << 20}:{TestData.Sha256(16L << 20, 5)}"));
        Assert.That(ids, Has.Length.EqualTo(50));
    }

    /// <summary>
    /// The server's own reactors, set up otherwise than the shared default group: blocking in
    /// epoll_wait at once, or handing the polling to the pool after every wake-up.
    /// </summary>
    [TestCase("no yield"), TestCase("hand-off"), CancelAfter(30_000)]
    public async Task OtherReactorSettings_StillServe(string setting, CancellationToken ct)
    {
        Action<PipeTransportOptions> configure = setting switch
        {
            "no yield" => o => o.ReactorsYieldBeforeWaiting = false,
            "hand-off" => o => o.ReactorPolling = ReactorPolling.HandOffToThreadPool,
            _ => throw new ArgumentOutOfRangeException(nameof(setting), setting, null),
        };
        await using var server = await StartTcpAndUnixAsync(ct, configure);
        using var client = server.CreateTcpClient();
        using var unixClient = TestServer.CreateUnixClient(SocketPath);

        using var response = await client.PostAsync("/sha256", new TestData.Content(16L << 20, 6), ct);
        var ids = await Task.WhenAll(Enumerable.Range(0, 50).Select(i => (i % 2 == 0 ? client : unixClient).GetStringAsync("/id", ct)));

        Assert.That(await response.Content.ReadAsStringAsync(ct), Is.EqualTo($"{16L << 20}:{TestData.Sha256(16L << 20, 6)}"));
        Assert.That(ids, Has.Length.EqualTo(50));
    }

    [TestCase(0, true, ReactorPolling.Auto)]
    [TestCase(0, false, ReactorPolling.Auto)]
    [TestCase(3, true, ReactorPolling.Auto)]
    [TestCase(3, false, ReactorPolling.Auto)]
    [TestCase(0, true, ReactorPolling.HandOffToThreadPool)]
    [TestCase(0, true, ReactorPolling.DedicatedThread)]
    [TestCase(2, false, ReactorPolling.HandOffToThreadPool)]
    [CancelAfter(10_000)]
    public void ReactorOptions_ShapeTheServersOwnGroup(int reactorCount, bool yieldBeforeWaiting, ReactorPolling polling)
    {
        var options = new PipeTransportOptions { ReactorCount = reactorCount, ReactorsYieldBeforeWaiting = yieldBeforeWaiting, ReactorPolling = polling };
        using var factory = new PipeTransportFactory(Microsoft.Extensions.Options.Options.Create(options));

        ReactorGroup group = factory.GetReactorGroup();

        Assert.Multiple(() =>
        {
            Assert.That(group, Is.Not.SameAs(ReactorGroup.Default));
            Assert.That(group.Count, Is.EqualTo(reactorCount > 0 ? reactorCount : Math.Max(1, Environment.ProcessorCount / 2)));
            Assert.That(group.YieldsBeforeWaiting, Is.EqualTo(yieldBeforeWaiting));
            Assert.That(group.Polling, Is.EqualTo(polling == ReactorPolling.Auto ? ReactorGroup.Default.Polling : polling));
            Assert.That(factory.GetReactorGroup(), Is.SameAs(group), "one group per server");
            Assert.That(factory.GetConnectionOptions().ReactorGroup, Is.SameAs(group), "its connections run on it");
        });
    }

    internal static async Task<(long Length, string Hash)> HashAsync(Stream stream, CancellationToken ct)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[64 * 1024];
        long length = 0;
        int read;
        while ((read = await stream.ReadAsync(buffer, ct)) > 0)
        {
            hash.AppendData(buffer, 0, read);
            length += read;
        }
        return (length, Convert.ToHexString(hash.GetHashAndReset()));
    }
}
