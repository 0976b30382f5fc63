using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using PipeTransport.Kestrel;

namespace PipeTransport.Perf.Kestrel;

/// <summary>
/// Child mode <c>kestrel-server sockets|pipe|pipe-inline</c>: the app under test, identical on every
/// transport, over HTTP/1.1 and HTTP/2 (prior knowledge), on free loopback ports and on Unix sockets:
/// <c>/plaintext</c> (13 bytes, TechEmpower style), <c>/64k</c> (one 64 KiB body), <c>/echo</c> (a body
/// of the request's size, up to 64 KiB) and <c>/stats</c> (RSS and managed heap after an aggressive
/// compacting GC, for the idle-memory scenario). Prints "ready PORT H2PORT UNIX H2UNIX", serves until
/// stdin closes.
/// </summary>
internal static class KestrelServer
{
    private static readonly byte[] s_hello = "Hello, World!"u8.ToArray();
    private static readonly byte[] s_64k = Enumerable.Range(0, 64 * 1024).Select(i => (byte)('a' + i % 26)).ToArray();

    public static async Task<int> RunAsync(string transport)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        // HTTP/1.1 and HTTP/2 (prior knowledge: cleartext HTTP/2 needs an endpoint of its own), each on
        // loopback TCP and on a Unix socket.
        string unixDirectory = Directory.CreateTempSubdirectory("kestrel-perf-").FullName;
        string unix1 = Path.Combine(unixDirectory, "h1.sock");
        string unix2 = Path.Combine(unixDirectory, "h2.sock");
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, 0);
            k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http2);
            k.ListenUnixSocket(unix1);
            k.ListenUnixSocket(unix2, o => o.Protocols = HttpProtocols.Http2);
            k.AddServerHeader = false;
        });
        switch (transport)
        {
            case "sockets":
                break;
            case "pipe":
                builder.WebHost.UsePipeTransport();
                break;
            case KestrelTransports.PipeInline:
                builder.WebHost.UsePipeTransport(o => o.UnsafePreferInlineScheduling = true);
                break;
            case KestrelTransports.PipePoolSend:
                builder.WebHost.UsePipeTransport(o => o.ConnectionOptions.PoolSendThreshold = 64 * 1024);
                break;
            case KestrelTransports.PipeNoYield:
                builder.WebHost.UsePipeTransport(o => o.ReactorsYieldBeforeWaiting = false);
                break;
            case KestrelTransports.PipeDedicated:
                builder.WebHost.UsePipeTransport(o => o.ReactorPolling = ReactorPolling.DedicatedThread);
                break;
            case KestrelTransports.PipeNoCoalesce:
                builder.WebHost.UsePipeTransport(o => o.ConnectionOptions.CoalesceFlushes = false);
                break;
            case KestrelTransports.PipeReactorPerCpu:
                builder.WebHost.UsePipeTransport(o => o.ReactorCount = Environment.ProcessorCount);
                break;
            case KestrelTransports.PipeHandOff:
                builder.WebHost.UsePipeTransport(o => o.ReactorPolling = ReactorPolling.HandOffToThreadPool);
                break;
            default:
                throw new ArgumentException($"unknown transport {transport}");
        }

        await using var app = builder.Build();
        app.Run(async context =>
        {
            if (context.Request.Path.Value == "/echo")
            {
                // gRPC-shaped: read the request body, answer with a body of the same size.
                int length = 0;
                var input = context.Request.BodyReader;
                while (true)
                {
                    var read = await input.ReadAsync();
                    length += (int)read.Buffer.Length;
                    input.AdvanceTo(read.Buffer.End);
                    if (read.IsCompleted)
                    {
                        break;
                    }
                }

                context.Response.ContentType = "application/octet-stream";
                context.Response.ContentLength = length;
                await context.Response.Body.WriteAsync(s_64k.AsMemory(0, Math.Min(length, s_64k.Length)));
                return;
            }

            var body = context.Request.Path.Value switch
            {
                "/plaintext" => s_hello,
                "/64k" => s_64k,
                "/stats" => Stats(),
                _ => null,
            };
            if (body is null)
            {
                context.Response.StatusCode = 404;
                return;
            }

            context.Response.ContentType = "text/plain";
            context.Response.ContentLength = body.Length;
            await context.Response.Body.WriteAsync(body);
        });
        await app.StartAsync();
        int[] ports = app.Urls.Where(u => u.StartsWith("http://127.", StringComparison.Ordinal)).Select(u => new Uri(u).Port).ToArray();
        Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ready {ports[0]} {ports[1]} {unix1} {unix2}"));
        Console.Out.Flush();

        // The harness stops us by closing stdin.
        await Console.In.ReadToEndAsync();
        await app.StopAsync();
        Directory.Delete(unixDirectory, recursive: true);
        return 0;
    }

    private static byte[] Stats()
    {
        // As in idle-server: compact and give free GC memory back to the OS, so RSS counts what the
        // connections hold rather than garbage left by accepting them.
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        long heap = GC.GetTotalMemory(forceFullCollection: true);
        string[] statm = File.ReadAllText("/proc/self/statm").Split(' ');
        long rss = long.Parse(statm[1], CultureInfo.InvariantCulture) * Environment.SystemPageSize;
        return System.Text.Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{rss} {heap}"));
    }
}
