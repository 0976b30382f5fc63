using System.Net.WebSockets;
using System.Text;
using Mono.Unix.Native;
using NUnit.Framework;

namespace PipeTransport.Kestrel.Tests;

/// <summary>
/// The docs/nginx.md recipe, run: a real nginx (master as root, workers as www-data) in front of a
/// Kestrel app whose <c>UsePipeTransport()</c> Unix socket has group www-data and mode 0660.
/// </summary>
public sealed class NginxTests
{
    private const long ThirtyTwoMiB = 32L * 1024 * 1024;
    private string _dir = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("ptk-nginx-").FullName;

        // The workers must be able to reach the socket through its folder (search only); the socket's
        // own group and mode decide whether they may connect.
        File.SetUnixFileMode(_dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                                   | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test, CancelAfter(120_000)]
    public async Task Get_a_32MiB_post_and_a_websocket_through_nginx_to_the_unix_socket(CancellationToken ct)
    {
        bool root = Syscall.geteuid() == 0;
        string? nginx = NginxProcess.Find();
        if (nginx is null)
        {
            if (!root)
            {
                Assert.Ignore("nginx is not installed (.ci/run installs it)");
            }

            Assert.Fail("nginx is not installed: apt-get install nginx (.ci/run does)");
        }

        // Root: the recipe as written (workers as www-data, socket group www-data). Otherwise nginx runs
        // as us and the socket gets our own group, the only one we may give it.
        (string group, _) = UnixSocketOwnershipTests.TargetGroup();
        string socket = Path.Combine(_dir, "app.sock");
        await using var server = await TestServer.StartAsync(k => k.ListenUnixSocket(socket), ct, o =>
        {
            o.UnixSocketFileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;
            o.UnixSocketGroup = group;
        });
        int port = NginxProcess.FreePort();
        await using var proxy = await NginxProcess.StartAsync(
            nginx!, Path.Combine(_dir, "nginx"), NginxProcess.RecipeSite(socket, port), port, root ? "www-data" : null, ct);
        using var http = new HttpClient { BaseAddress = proxy.Uri };

        // GET, served by PipeTransport, called by an nginx worker.
        using (var get = await http.GetAsync("/", ct))
        {
            Assert.That(get.IsSuccessStatusCode, $"{(int)get.StatusCode}; nginx: {proxy.Stderr}");
            Assert.That(await get.Content.ReadAsStringAsync(ct), Is.EqualTo("hello"));
        }

        Assert.That(await http.GetStringAsync("/transport", ct), Is.EqualTo("pipe"));
        string caller = await http.GetStringAsync("/uid", ct);
        uint expectedUid = root ? Syscall.getpwnam("www-data")!.pw_uid : Syscall.geteuid();
        Assert.That(caller, Does.StartWith($"{expectedUid}:"), "the peer on the socket is an nginx worker");

        // 32 MiB up, hashed by the app as it streams in.
        using (var post = await http.PostAsync("/sha256", new TestData.Content(ThirtyTwoMiB, 17), ct))
        {
            Assert.That(post.IsSuccessStatusCode, $"{(int)post.StatusCode}; nginx: {proxy.Stderr}");
            Assert.That(await post.Content.ReadAsStringAsync(ct), Is.EqualTo($"{ThirtyTwoMiB}:{TestData.Sha256(ThirtyTwoMiB, 17)}"));
        }

        // A WebSocket: nginx passes the upgrade on (proxy_http_version 1.1, Upgrade and Connection headers).
        // Text and binary messages come back intact and of their type; a 1 MiB one spans many frames and buffers.
        using var ws = new ClientWebSocket();
        await ws.ConnectAsync(new Uri($"ws://127.0.0.1:{proxy.Port}/ws"), ct);
        var binary = new byte[1024 * 1024];
        new TestData(19).Fill(binary);
        var messages = new (WebSocketMessageType Type, byte[] Data)[]
        {
            (WebSocketMessageType.Text, "one"u8.ToArray()),
            (WebSocketMessageType.Text, Encoding.UTF8.GetBytes(new string('x', 100_000))),
            (WebSocketMessageType.Binary, binary),
            (WebSocketMessageType.Text, "two"u8.ToArray()),
        };
        var buffer = new byte[128 * 1024];
        foreach ((WebSocketMessageType type, byte[] data) in messages)
        {
            await ws.SendAsync(data, type, endOfMessage: true, ct);
            using var echo = new MemoryStream();
            WebSocketReceiveResult result;
            do
            {
                result = await ws.ReceiveAsync(buffer, ct);
                echo.Write(buffer, 0, result.Count);
            }
            while (!result.EndOfMessage);
            Assert.That(result.MessageType, Is.EqualTo(type));
            Assert.That(echo.ToArray(), Is.EqualTo(data), $"a {data.Length}-byte {type} message");
        }

        // The close handshake: ours reaches the app, the app's answer ("bye") comes back through nginx.
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", ct);
        Assert.That(ws.State, Is.EqualTo(WebSocketState.Closed));
        Assert.That(ws.CloseStatus, Is.EqualTo(WebSocketCloseStatus.NormalClosure));
        Assert.That(ws.CloseStatusDescription, Is.EqualTo("bye"));
    }
}
