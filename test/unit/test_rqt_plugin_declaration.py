"""The rqt plugin is declared where rqt_gui looks (rqt itself is not installable here)."""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path


def test_plugin_xml_names_a_plugin_class_of_this_package(repo_root: Path) -> None:
    (plugin,) = ET.parse(repo_root / 'plugin.xml').getroot().iter('class')
    assert plugin.get('base_class_type') == 'rqt_gui_py::Plugin'
    module, _, name = plugin.get('type', '').rpartition('.')
    source = repo_root / Path(*module.split('.')).with_suffix('.py')
    tree = ast.parse(source.read_text())
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    assert name in classes
    assert [ast.unparse(base) for base in classes[name].bases] == ['Plugin']
    methods = {node.name for node in classes[name].body if isinstance(node, ast.FunctionDef)}
    assert {'__init__', 'shutdown_plugin'} <= methods


def test_package_exports_and_installs_the_plugin_xml(repo_root: Path) -> None:
    export = ET.parse(repo_root / 'package.xml').getroot().find('export')
    assert export is not None
    rqt = export.find('rqt_gui')
    assert rqt is not None
    assert rqt.get('plugin') == '${prefix}/plugin.xml'
    assert "'plugin.xml'" in (repo_root / 'setup.py').read_text()
