using System.Text;
using Microsoft.Extensions.Logging;
using NUnit.Framework;

namespace PipeTransport.Kestrel.Tests;

/// <summary>HTTP over a FIFO pair: the client writes its request into one FIFO and reads the response from the other.</summary>
public sealed class FifoEndPointTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("ptk-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string Requests => Path.Combine(_dir, "requests.fifo");

    private string Responses => Path.Combine(_dir, "responses.fifo");

    /// <summary>
    /// A client of plain blocking FileStreams: opening a FIFO blocks until the other end is open, so both
    /// opens run at once; closing the request FIFO after writing is the client's half-close.
    /// </summary>
    private async Task<string> ExchangeAsync(string request, CancellationToken ct)
    {
        var openResponses = Task.Run(() => new FileStream(Responses, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1), ct);
        var openRequests = Task.Run(() => new FileStream(Requests, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1), ct);
        await using var responses = await openResponses.WaitAsync(ct);
        await using (var requests = await openRequests.WaitAsync(ct))
        {
            await requests.WriteAsync(Encoding.ASCII.GetBytes(request), ct);
        }
        using var reader = new StreamReader(responses, Encoding.ASCII);
        return await reader.ReadToEndAsync(ct);
    }

    [Test, CancelAfter(30_000), Repeat(10)]
    public async Task ServesOneClientAfterAnother_OnTheSameFifos(CancellationToken ct)
    {
        await using var server = await TestServer.StartAsync(k => k.Listen(new FifoEndPoint(Requests, Responses)), ct);

        var first = await ExchangeAsync("GET /id HTTP/1.1\r\nHost: fifo\r\n\r\n", ct);
        var second = await ExchangeAsync("GET /id HTTP/1.1\r\nHost: fifo\r\n\r\n", ct);
        var third = await ExchangeAsync("GET /transport HTTP/1.1\r\nHost: fifo\r\nConnection: close\r\n\r\n", ct);

        Assert.That(RawResponse.Parse(first).Status, Is.EqualTo(200));
        Assert.That(RawResponse.Parse(first).Body, Has.Length.EqualTo(13));
        Assert.That(RawResponse.Parse(second).Body, Is.Not.EqualTo(RawResponse.Parse(first).Body), "a new connection per client");
        Assert.That(RawResponse.Parse(third).Body, Is.EqualTo("pipe"));
        Assert.That(server.Addresses, Does.Contain($"http://fifo:{Requests}|{Responses}"));
        Assert.That(server.Logs.AtLeast(LogLevel.Warning), Is.Empty);
    }

    [Test, CancelAfter(30_000)]
    public async Task KeepAlive_SeveralRequestsOnOneFifoConnection(CancellationToken ct)
    {
        await using var server = await TestServer.StartAsync(k => k.Listen(new FifoEndPoint(Requests, Responses)), ct);

        var response = await ExchangeAsync(string.Concat(Enumerable.Repeat("GET /id HTTP/1.1\r\nHost: fifo\r\n\r\n", 3)), ct);

        var ids = RawResponse.ParseAll(response).Select(r => r.Body).ToArray();
        Assert.That(ids, Has.Length.EqualTo(3));
        Assert.That(ids.Distinct().Count(), Is.EqualTo(1));
    }

    [Test, CancelAfter(30_000)]
    public async Task OneThreadClient_OpensRequestFifoFirst(CancellationToken ct)
    {
        await using var server = await TestServer.StartAsync(k => k.Listen(new FifoEndPoint(Requests, Responses)), ct);

        var response = await Task.Run(() =>
        {
            // Blocking opens, one after the other, in the documented order.
            var requests = new FileStream(Requests, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, 1);
            using var responses = new FileStream(Responses, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1);
            using (requests)
            {
                requests.Write(Encoding.ASCII.GetBytes("GET /transport HTTP/1.1\r\nHost: fifo\r\n\r\n"));
            }
            using var reader = new StreamReader(responses, Encoding.ASCII);
            return reader.ReadToEnd();
        }, ct).WaitAsync(ct);

        Assert.That(RawResponse.Parse(response).Body, Is.EqualTo("pipe"));
    }

    [Test, CancelAfter(30_000)]
    public async Task ShellClient_WithPrintfAndCat(CancellationToken ct)
    {
        await using var server = await TestServer.StartAsync(k => k.Listen(new FifoEndPoint(Requests, Responses)), ct);

        var script = $"cat '{Responses}' & printf 'GET / HTTP/1.1\\r\\nHost: sh\\r\\nConnection: close\\r\\n\\r\\n' > '{Requests}'; wait";
        var (exit, stdout, stderr) = await ProcessRunner.RunAsync("sh", ["-c", script], ct);

        Assert.That(exit, Is.Zero, stderr);
        Assert.That(RawResponse.Parse(stdout).Body, Is.EqualTo("hello"));
    }

    [Test, CancelAfter(30_000)]
    public async Task CreatesMissingFifos_AndRemovesThemOnStop(CancellationToken ct)
    {
        var server = await TestServer.StartAsync(k => k.Listen(new FifoEndPoint(Requests, Responses)), ct);
        var existed = (File.Exists(Requests), File.Exists(Responses));
        var mode = File.GetUnixFileMode(Requests);
        await server.DisposeAsync();

        Assert.That(existed, Is.EqualTo((true, true)));
        Assert.That(mode, Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        Assert.That((File.Exists(Requests), File.Exists(Responses)), Is.EqualTo((false, false)));
    }

    [Test, CancelAfter(30_000)]
    public async Task ExistingFifos_AreUsedAndKept(CancellationToken ct)
    {
        Fifo.Create(Requests);
        Fifo.Create(Responses);
        var server = await TestServer.StartAsync(k => k.Listen(new FifoEndPoint(Requests, Responses)), ct);
        var response = await ExchangeAsync("GET / HTTP/1.1\r\nHost: fifo\r\n\r\n", ct);
        await server.DisposeAsync();

        Assert.That(RawResponse.Parse(response).Body, Is.EqualTo("hello"));
        Assert.That((File.Exists(Requests), File.Exists(Responses)), Is.EqualTo((true, true)));
    }

    [Test, CancelAfter(30_000)]
    public void ARegularFileInsteadOfAFifo_FailsToStart(CancellationToken ct)
    {
        File.WriteAllText(Requests, "not a fifo");

        var e = Assert.ThrowsAsync<IOException>(async () =>
            await TestServer.StartAsync(k => k.Listen(new FifoEndPoint(Requests, Responses)), ct));

        Assert.That(e!.Message, Does.Contain(Requests).And.Contain("not a FIFO"));
        Assert.That(File.Exists(Responses), Is.False, "nothing half-created is left behind");
    }

    [Test, CancelAfter(30_000)]
    public async Task StopWhileWaitingForAClient_Completes(CancellationToken ct)
    {
        var server = await TestServer.StartAsync(k => k.Listen(new FifoEndPoint(Requests, Responses)), ct);

        await server.DisposeAsync();

        Assert.That(File.Exists(Requests), Is.False);
    }
}
