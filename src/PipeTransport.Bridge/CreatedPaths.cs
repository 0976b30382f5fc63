namespace PipeTransport.Bridge;

/// <summary>FIFOs and socket files this process created, removed on exit (including Ctrl-C/SIGTERM).</summary>
internal sealed class CreatedPaths
{
    private readonly HashSet<string> _paths = [];

    public void Add(string path)
    {
        lock (_paths) _paths.Add(Path.GetFullPath(path));
    }

    public bool Contains(string path)
    {
        lock (_paths) return _paths.Contains(Path.GetFullPath(path));
    }

    public void RemoveAll()
    {
        string[] paths;
        lock (_paths)
        {
            paths = [.. _paths];
            _paths.Clear();
        }
        foreach (string path in paths)
        {
            try { File.Delete(path); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }
}
