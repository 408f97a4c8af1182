from screen.cli import app

app(prog_name="screen")
