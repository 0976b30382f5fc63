using System.Net;
using System.Net.Sockets;
using NUnit.Framework;

namespace PipeTransport.Kestrel.Tests;

/// <summary>
/// A client that sends its request and shuts down its write side (FIN) still gets its whole response:
/// the transport keeps writing after the peer's EOF. Kestrel's Sockets transport closes the connection
/// instead (aspnetcore#14937); the last test pins that difference down.
/// </summary>
public sealed class HalfCloseTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("ptk-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private Task<TestServer> StartAsync(CancellationToken ct, bool pipeTransport = true) =>
        TestServer.StartAsync(k =>
        {
            k.Listen(IPAddress.Loopback, 0);
            k.ListenUnixSocket(Path.Combine(_dir, "s.sock"));
        }, ct, pipeTransport: pipeTransport);

    private EndPoint EndPointOf(TestServer server, string kind) =>
        kind == "tcp" ? new IPEndPoint(IPAddress.Loopback, server.Port) : new UnixDomainSocketEndPoint(Path.Combine(_dir, "s.sock"));

    [TestCase("tcp"), TestCase("unix")]
    [CancelAfter(20_000)]
    public async Task ShutdownSendAfterRequest_StillGetsTheFullResponse(string kind, CancellationToken ct)
    {
        await using var server = await StartAsync(ct);
        using var client = await RawClient.ConnectAsync(EndPointOf(server, kind), ct);

        await client.SendAsync("GET /bytes/4194304 HTTP/1.1\r\nHost: x\r\n\r\n", ct);
        client.Socket.Shutdown(SocketShutdown.Send);
        var response = await client.ReadToEndAsync(ct);

        var headerEnd = response.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        Assert.That(response, Does.StartWith("HTTP/1.1 200 OK"));
        Assert.That(response.Length - headerEnd - 4, Is.EqualTo(4194304));
    }

    [TestCase("tcp"), TestCase("unix")]
    [CancelAfter(20_000)]
    public async Task ShutdownSendWhileHandlerRuns_ResponseStillArrives(string kind, CancellationToken ct)
    {
        await using var server = await StartAsync(ct);
        using var client = await RawClient.ConnectAsync(EndPointOf(server, kind), ct);

        await client.SendAsync("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n", ct);
        await server.Entered.Task.WaitAsync(ct);
        client.Socket.Shutdown(SocketShutdown.Send);
        server.Release.TrySetResult();
        var response = await client.ReadToEndAsync(ct);

        Assert.That(RawResponse.Parse(response).Body, Is.EqualTo("done"));
    }

    [Test, CancelAfter(20_000)]
    public async Task PipelinedRequestsThenShutdownSend_AllAnswered(CancellationToken ct)
    {
        await using var server = await StartAsync(ct);
        using var client = await RawClient.ConnectAsync(EndPointOf(server, "tcp"), ct);

        await client.SendAsync(string.Concat(Enumerable.Repeat("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 10)), ct);
        client.Socket.Shutdown(SocketShutdown.Send);
        var response = await client.ReadToEndAsync(ct);

        Assert.That(RawResponse.ParseAll(response).Select(r => r.Body), Is.EqualTo(Enumerable.Repeat("hello", 10)));
    }

    [Test, CancelAfter(20_000)]
    public async Task SocketsTransport_ForComparison_AbortsTheResponse(CancellationToken ct)
    {
        // Documents why half-close is ours: the default transport treats the FIN as the client leaving.
        await using var server = await StartAsync(ct, pipeTransport: false);
        using var client = await RawClient.ConnectAsync(EndPointOf(server, "tcp"), ct);

        await client.SendAsync("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n", ct);
        await server.Entered.Task.WaitAsync(ct);
        client.Socket.Shutdown(SocketShutdown.Send);
        string response;
        try
        {
            response = await client.ReadToEndAsync(ct);
        }
        catch (SocketException)
        {
            response = "";
        }
        server.Release.TrySetResult();

        Assert.That(response, Does.Not.Contain("done"));
    }
}
