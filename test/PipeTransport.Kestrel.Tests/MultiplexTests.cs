using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace PipeTransport.Kestrel.Tests;

/// <summary>
/// Many requests in flight on one connection, where the transport gathers several responses into one
/// write: HTTP/1.1 pipelining (every response, in order) and HTTP/2 with 100 concurrent streams
/// (every body), over TCP and a Unix socket.
/// </summary>
public sealed class MultiplexTests
{
    private const int Depth = 16;
    private const int Streams = 100;
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("ptk-mux-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private static readonly IPAddress Http2Address = IPAddress.Parse("127.0.0.2");

    private string Http1Path => Path.Combine(_dir, "h1.sock");

    private string Http2Path => Path.Combine(_dir, "h2.sock");

    private Task<TestServer> StartAsync(CancellationToken ct) => TestServer.StartAsync(k =>
    {
        k.Listen(IPAddress.Loopback, 0);
        k.ListenUnixSocket(Http1Path);
        k.Listen(Http2Address, 0, o => o.Protocols = HttpProtocols.Http2); // told apart from the HTTP/1.1 port by its address
        k.ListenUnixSocket(Http2Path, o => o.Protocols = HttpProtocols.Http2);
    }, ct);

    [TestCase("tcp"), TestCase("unix")]
    [CancelAfter(30_000)]
    public async Task Pipelined_SixteenRequestsInOneWrite_AllAnsweredInOrder(string kind, CancellationToken ct)
    {
        await using var server = await StartAsync(ct);
        EndPoint endPoint = kind == "tcp"
            ? new IPEndPoint(IPAddress.Loopback, new Uri(server.Addresses.Single(a => a.StartsWith("http://127.0.0.1:", StringComparison.Ordinal))).Port)
            : new UnixDomainSocketEndPoint(Http1Path);

        // Rounds on one connection, each batch in one write; the last request of the last batch closes
        // the connection, so the client reads to EOF and sees exactly what was sent.
        const int rounds = 20;
        using var client = await RawClient.ConnectAsync(endPoint, ct);
        for (int round = 0; round < rounds; round++)
        {
            string batch = string.Concat(Enumerable.Range(0, Depth).Select(i =>
                $"GET /seq/{round * Depth + i} HTTP/1.1\r\nHost: x\r\n{(round == rounds - 1 && i == Depth - 1 ? "Connection: close\r\n" : "")}\r\n"));
            await client.SendAsync(batch, ct);
        }

        var responses = RawResponse.ParseAll(await client.ReadToEndAsync(ct));
        Assert.That(responses.Select(r => r.Status), Is.All.EqualTo(200));
        Assert.That(responses.Select(r => r.Body), Is.EqualTo(Enumerable.Range(0, rounds * Depth).Select(TestServer.SequenceBody)));
        Assert.That(server.Logs.AtLeast(LogLevel.Warning), Is.Empty);
    }

    [TestCase("tcp"), TestCase("unix")]
    [CancelAfter(30_000)]
    public async Task Http2_HundredConcurrentStreamsOnOneConnection_EveryBodyIntact(string kind, CancellationToken ct)
    {
        await using var server = await StartAsync(ct);
        server.GatherCount = Streams;
        using var client = Http2Client(server, kind);

        // Provably concurrent: /gather answers only once all of them are in their handlers.
        string[] ids = await Task.WhenAll(Enumerable.Range(0, Streams).Select(_ => client.GetStringAsync("/gather", ct)));
        Assert.That(ids.Distinct().Count(), Is.EqualTo(1), "one connection");

        // Responses of several sizes at once, and gRPC-shaped 4 KiB requests.
        string[] bodies = await Task.WhenAll(Enumerable.Range(0, Streams).Select(i => client.GetStringAsync($"/seq/{i}", ct)));
        Assert.That(bodies, Is.EqualTo(Enumerable.Range(0, Streams).Select(TestServer.SequenceBody)));

        var posts = Enumerable.Range(0, Streams).Select(async i =>
        {
            byte[] body = RandomNumberGenerator.GetBytes(4096);
            using var response = await client.PostAsync("/sha256", new ByteArrayContent(body), ct);
            Assert.That(response.Version, Is.EqualTo(HttpVersion.Version20));
            return (Expected: $"{body.Length}:{Convert.ToHexString(SHA256.HashData(body))}", Got: await response.Content.ReadAsStringAsync(ct));
        });
        foreach (var (expected, got) in await Task.WhenAll(posts))
        {
            Assert.That(got, Is.EqualTo(expected));
        }

        Assert.That(server.Logs.AtLeast(LogLevel.Warning), Is.Empty);
    }

    // HTTP/2 prior knowledge, one connection only: every stream shares it.
    private HttpClient Http2Client(TestServer server, string kind)
    {
        var handler = new SocketsHttpHandler { EnableMultipleHttp2Connections = false };
        Uri address;
        if (kind == "unix")
        {
            TestServer.ConnectToUnix(handler, Http2Path);
            address = new Uri("http://localhost/");
        }
        else
        {
            address = new Uri(server.Addresses.Single(a => a.StartsWith($"http://{Http2Address}:", StringComparison.Ordinal)));
        }

        return new HttpClient(handler)
        {
            BaseAddress = address,
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
    }
}
