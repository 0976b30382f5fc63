using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using NUnit.Framework;

namespace PipeTransport.Kestrel.Tests;

/// <summary>
/// The docs/tls.md recipe, run: its <c>openssl</c> command makes the certificate, Kestrel serves HTTPS with
/// HTTP/1.1 and HTTP/2 (ALPN) on <c>UsePipeTransport()</c> over TCP and a Unix socket, and HttpClient and
/// curl talk to it.
/// </summary>
public sealed class TlsTests
{
    private const long ThirtyTwoMiB = 32L * 1024 * 1024;
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("ptk-tls-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string SocketPath => Path.Combine(_dir, "https.sock");

    [Test, CancelAfter(120_000)]
    public async Task HttpClient_gets_downloads_and_uploads_32MiB_over_tls(
        [Values("tcp", "unix")] string kind, [Values("2.0", "1.1")] string version, CancellationToken ct)
    {
        X509Certificate2 cert = await CreateCertificateAsync(ct);
        await using var server = await StartAsync(cert, ct);
        using HttpClient client = Client(server, kind, cert, Version.Parse(version));

        using (var get = await client.GetAsync("/protocol", ct))
        {
            Assert.That(get.Version, Is.EqualTo(Version.Parse(version)));
            Assert.That(await get.Content.ReadAsStringAsync(ct), Is.EqualTo(version == "2.0" ? "HTTP/2 https" : "HTTP/1.1 https"));
        }

        Assert.That(await client.GetStringAsync("/transport", ct), Is.EqualTo("pipe"));

        // 32 MiB down, hashed here as it arrives; 32 MiB up, hashed by the app as it arrives.
        using (var download = await client.GetAsync($"/bytes/{ThirtyTwoMiB}", HttpCompletionOption.ResponseHeadersRead, ct))
        {
            await using Stream body = await download.Content.ReadAsStreamAsync(ct);
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[64 * 1024];
            long length = 0;
            int read;
            while ((read = await body.ReadAsync(buffer, ct)) > 0)
            {
                hash.AppendData(buffer, 0, read);
                length += read;
            }

            Assert.That($"{length}:{Convert.ToHexString(hash.GetHashAndReset())}", Is.EqualTo($"{ThirtyTwoMiB}:{TestData.Sha256(ThirtyTwoMiB, 42)}"));
        }

        using var upload = await client.PostAsync("/sha256", new TestData.Content(ThirtyTwoMiB, 29), ct);
        Assert.That(upload.Version, Is.EqualTo(Version.Parse(version)));
        Assert.That(await upload.Content.ReadAsStringAsync(ct), Is.EqualTo($"{ThirtyTwoMiB}:{TestData.Sha256(ThirtyTwoMiB, 29)}"));
    }

    [Test, CancelAfter(120_000)]
    public async Task Curl_http2_trusting_the_certificate_gets_HTTP2_200_and_uploads_32MiB([Values("tcp", "unix")] string kind, CancellationToken ct)
    {
        X509Certificate2 cert = await CreateCertificateAsync(ct);
        await using var server = await StartAsync(cert, ct);
        string[] target = kind == "unix"
            ? ["--unix-socket", SocketPath, "https://localhost"]
            : [$"https://127.0.0.1:{HttpsPort(server)}"];
        string[] common = ["--http2", "--cacert", Path.Combine(_dir, "cert.pem"), "-sS", .. target[..^1]];

        var get = await ProcessRunner.RunAsync("curl", [.. common, "-i", target[^1] + "/protocol"], ct);
        Assert.That(get.ExitCode, Is.Zero, get.Stderr);
        Assert.That(get.Stdout, Does.StartWith("HTTP/2 200"));
        Assert.That(get.Stdout, Does.EndWith("\r\n\r\nHTTP/2 https"));

        string file = Path.Combine(_dir, "upload.bin");
        await using (var stream = File.Create(file))
        {
            var data = new TestData(31);
            var chunk = new byte[TestData.ChunkSize];
            for (long written = 0; written < ThirtyTwoMiB; written += chunk.Length)
            {
                data.Fill(chunk);
                await stream.WriteAsync(chunk, ct);
            }
        }

        var post = await ProcessRunner.RunAsync("curl", [.. common, "--data-binary", "@" + file, target[^1] + "/sha256"], ct);
        Assert.That(post.ExitCode, Is.Zero, post.Stderr);
        Assert.That(post.Stdout, Is.EqualTo($"{ThirtyTwoMiB}:{TestData.Sha256(ThirtyTwoMiB, 31)}"));
    }

    /// <summary>Runs docs/tls.md's <c>sh</c> block (the openssl command) as it is, in the test folder.</summary>
    private async Task<X509Certificate2> CreateCertificateAsync(CancellationToken ct)
    {
        string doc = File.ReadAllText(Path.Combine(NginxProcess.RepositoryRoot(), "docs", "tls.md"));
        int start = doc.IndexOf("```sh\n", StringComparison.Ordinal) + "```sh\n".Length;
        string command = doc[start..doc.IndexOf("```", start, StringComparison.Ordinal)];
        Assert.That(command, Does.StartWith("openssl req -x509"), "docs/tls.md's first sh block makes the certificate");

        var result = await ProcessRunner.RunAsync("sh", ["-ec", $"cd '{_dir}'\n{command}"], ct);
        Assert.That(result.ExitCode, Is.Zero, result.Stderr);
        return X509Certificate2.CreateFromPemFile(Path.Combine(_dir, "cert.pem"), Path.Combine(_dir, "key.pem"));
    }

    /// <summary>The app of docs/tls.md, on port 0 and a socket in the test folder.</summary>
    private Task<TestServer> StartAsync(X509Certificate2 cert, CancellationToken ct) =>
        TestServer.StartAsync(k =>
        {
            k.Listen(IPAddress.Loopback, 0, o =>
            {
                o.UseHttps(cert);
                o.Protocols = HttpProtocols.Http1AndHttp2;
            });
            k.ListenUnixSocket(SocketPath, o =>
            {
                o.UseHttps(cert);
                o.Protocols = HttpProtocols.Http1AndHttp2;
            });
        }, ct);

    private static int HttpsPort(TestServer server) =>
        server.Addresses.Select(a => new Uri(a)).First(u => u.Scheme == "https" && u.Host != "unix").Port;

    /// <summary>HttpClient asking for exactly <paramref name="version"/>, trusting only <paramref name="cert"/>.</summary>
    private HttpClient Client(TestServer server, string kind, X509Certificate2 cert, Version version)
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback =
            (_, presented, _, _) => presented is not null && presented.GetRawCertData().AsSpan().SequenceEqual(cert.RawData);
        HttpClient client = kind == "unix"
            ? new HttpClient(TestServer.ConnectToUnix(handler, SocketPath)) { BaseAddress = new Uri("https://localhost/") }
            : new HttpClient(handler) { BaseAddress = new Uri($"https://127.0.0.1:{HttpsPort(server)}/") };
        client.DefaultRequestVersion = version;
        client.DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        return client;
    }
}
