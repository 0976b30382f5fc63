using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace PipeTransport.Kestrel.Tests;

/// <summary>
/// A real <see cref="WebApplication"/> on PipeTransport (or, for comparison, on Kestrel's default
/// Sockets transport) with the endpoints the tests call, and probes into what its handlers saw.
/// </summary>
internal sealed class TestServer : IAsyncDisposable
{
    private TestServer(WebApplication app, CapturingLoggerProvider logs)
    {
        App = app;
        Logs = logs;
    }

    public WebApplication App { get; }

    public CapturingLoggerProvider Logs { get; }

    /// <summary>Set when a request to /wait is in its handler.</summary>
    public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Lets /wait requests answer.</summary>
    public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Set when a /wait request's RequestAborted fires.</summary>
    public TaskCompletionSource Aborted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Set when /consume has read its first body bytes.</summary>
    public TaskCompletionSource ConsumeStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>How /consume ended: null when it read the body to its end, else the exception.</summary>
    public TaskCompletionSource<Exception?> ConsumeEnded { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public LargeResponseProbe Large { get; } = new();

    /// <summary>Requests to /gather wait until this many have arrived, so they are provably concurrent.</summary>
    public int GatherCount { get; set; } = 200;

    private int _gathered;
    private readonly TaskCompletionSource _allGathered = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public IReadOnlyCollection<string> Addresses =>
        App.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.ToArray();

    /// <summary>The port of the first TCP address.</summary>
    public int Port => Addresses.Select(a => new Uri(a)).First(u => u.Host != "unix" && u.Scheme == "http" && u.Port > 0).Port;

    public Uri TcpUri => new($"http://127.0.0.1:{Port}/");

    public static async Task<TestServer> StartAsync(
        Action<KestrelServerOptions> listen,
        CancellationToken cancellationToken,
        Action<PipeTransportOptions>? configure = null,
        bool pipeTransport = true,
        LogLevel transportLogLevel = LogLevel.Warning)
    {
        // No appsettings.json watcher: its inotify fd closes asynchronously and would blur the fd-leak test.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = "PipeTransport.Kestrel.Tests",
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        var logs = new CapturingLoggerProvider(transportLogLevel);
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        builder.Logging.AddFilter(PipeTransportLog.Category, transportLogLevel);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = null;
            listen(k);
        });
        if (pipeTransport)
        {
            builder.WebHost.UsePipeTransport(configure);
        }
        var app = builder.Build();
        var server = new TestServer(app, logs);
        server.MapEndpoints();
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
        return server;
    }

    private void MapEndpoints()
    {
        var app = App;
        app.UseWebSockets();
        app.MapGet("/", () => "hello");
        app.MapGet("/id", (HttpContext c) => c.Connection.Id);
        app.MapGet("/seq/{i:int}", (int i) => SequenceBody(i));
        app.MapGet("/transport", (HttpContext c) => c.Features.Get<IPeerCredentialsFeature>() is null ? "other" : "pipe");
        app.MapGet("/uid", (HttpContext c) => c.Features.Get<IPeerCredentialsFeature>()?.PeerCredentials is { } p ? $"{p.UserId}:{p.ProcessId}" : "none");
        app.MapPost("/sha256", HashBodyAsync);
        app.MapGet("/protocol", (HttpContext c) => $"{c.Request.Protocol} {c.Request.Scheme}");
        app.MapGet("/bytes/{length:long}", async (HttpContext c, long length) =>
        {
            c.Response.ContentLength = length;
            var data = new TestData(42);
            var chunk = new byte[TestData.ChunkSize];
            for (long sent = 0; sent < length; sent += chunk.Length)
            {
                data.Fill(chunk);
                await c.Response.Body.WriteAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, length - sent)), c.RequestAborted);
            }
        });
        app.MapGet("/wait", async (HttpContext c) =>
        {
            c.RequestAborted.Register(() => Aborted.TrySetResult());
            Entered.TrySetResult();
            await Release.Task;
            return "done";
        });
        app.MapGet("/gather", async (HttpContext c) =>
        {
            if (Interlocked.Increment(ref _gathered) == GatherCount)
            {
                _allGathered.TrySetResult();
            }
            await _allGathered.Task.WaitAsync(c.RequestAborted);
            return c.Connection.Id;
        });
        app.MapGet("/large", Large.HandleAsync);
        app.MapPost("/consume", async (HttpContext c) =>
        {
            try
            {
                var buffer = new byte[64 * 1024];
                while (await c.Request.Body.ReadAsync(buffer) > 0)
                {
                    ConsumeStarted.TrySetResult();
                }
                ConsumeEnded.TrySetResult(null);
            }
            catch (Exception e)
            {
                ConsumeEnded.TrySetResult(e);
            }
        });
        app.Map("/ws", async (HttpContext c) =>
        {
            if (!c.WebSockets.IsWebSocketRequest)
            {
                c.Response.StatusCode = 400;
                return;
            }
            using var ws = await c.WebSockets.AcceptWebSocketAsync();
            var buffer = new byte[64 * 1024];
            while (true)
            {
                var result = await ws.ReceiveAsync(buffer, c.RequestAborted);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", c.RequestAborted);
                    return;
                }
                await ws.SendAsync(buffer.AsMemory(0, result.Count), result.MessageType, result.EndOfMessage, c.RequestAborted);
            }
        });
    }

    /// <summary>/sha256: answers the request body's length and SHA-256, hashed as it streams in.</summary>
    public static async Task HashBodyAsync(HttpContext c)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[64 * 1024];
        long length = 0;
        int read;
        while ((read = await c.Request.Body.ReadAsync(buffer, c.RequestAborted)) > 0)
        {
            hash.AppendData(buffer, 0, read);
            length += read;
        }
        await c.Response.WriteAsync($"{length}:{Convert.ToHexString(hash.GetHashAndReset())}", c.RequestAborted);
    }

    /// <summary>The body /seq/{i} answers: its number, then a filler whose length and letter depend on it.</summary>
    public static string SequenceBody(int i) => $"response {i} " + new string((char)('a' + i % 26), i * 37 % 4000);

    public HttpClient CreateTcpClient(HttpMessageHandler? handler = null) =>
        new(handler ?? new SocketsHttpHandler()) { BaseAddress = TcpUri };

    public static HttpClient CreateUnixClient(string path) =>
        new(ConnectToUnix(new SocketsHttpHandler(), path)) { BaseAddress = new Uri("http://localhost/") };

    /// <summary>Makes <paramref name="handler"/> connect to the Unix socket at <paramref name="path"/>, whatever the URI says.</summary>
    public static SocketsHttpHandler ConnectToUnix(SocketsHttpHandler handler, string path)
    {
        handler.ConnectCallback = async (_, ct) =>
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), ct);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        };
        return handler;
    }

    public async ValueTask DisposeAsync()
    {
        Release.TrySetResult();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await App.StopAsync(timeout.Token);
        await App.DisposeAsync();
    }

    /// <summary>/large writes up to 1 GiB in 64 KiB writes and records how far it got and whether it is stuck.</summary>
    public sealed class LargeResponseProbe
    {
        private long _written;
        private long _pendingSince = -1;

        public long Written => Volatile.Read(ref _written);

        /// <summary>Completes once the handler saw the client go (RequestAborted or a failed write), with what it caught.</summary>
        public TaskCompletionSource<Exception?> Ended { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>How long the current write has been waiting for the client, or zero.</summary>
        public TimeSpan PendingFor
        {
            get
            {
                var since = Volatile.Read(ref _pendingSince);
                return since < 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(since);
            }
        }

        public async Task HandleAsync(HttpContext c)
        {
            var chunk = new byte[64 * 1024];
            try
            {
                while (Written < 1L << 30 && !c.RequestAborted.IsCancellationRequested)
                {
                    var write = c.Response.BodyWriter.WriteAsync(chunk, c.RequestAborted);
                    if (!write.IsCompleted)
                    {
                        Volatile.Write(ref _pendingSince, Stopwatch.GetTimestamp());
                    }
                    var result = await write;
                    Volatile.Write(ref _pendingSince, -1);
                    if (result.IsCompleted || result.IsCanceled)
                    {
                        break;
                    }
                    Interlocked.Add(ref _written, chunk.Length);
                }

                // Kestrel turns writes after an abort into no-ops, so "the handler noticed" means
                // RequestAborted fired: wait for it (the test's own timeout bounds the wait).
                await Task.Delay(Timeout.Infinite, c.RequestAborted);
            }
            catch (Exception e)
            {
                Ended.TrySetResult(e);
            }
        }
    }
}
