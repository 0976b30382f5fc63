namespace PipeTransport.Bridge.Tests;

/// <summary>A private temporary folder for FIFOs and sockets (short path: sun_path is 108 bytes).</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir() => Path = Directory.CreateTempSubdirectory("pb-").FullName;

    public string Path { get; }

    public string this[string name] => System.IO.Path.Combine(Path, name);

    /// <summary>Makes a FIFO (mode 0600) in the folder and returns its path.</summary>
    public string Fifo(string name)
    {
        string path = this[name];
        PipeTransport.Fifo.Create(path);
        return path;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}
